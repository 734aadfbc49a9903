"""A tiny workflow with fake stages, so that the runner is tested with every other part real.

    setup → batch loop: get_batch → train → log_step_metrics → [save_checkpoint when save_due]
          → cleanup

The stages keep the data cursor in ``ctx.resources.next_step`` and say what happened in
``StageResult`` facts like the real ones (``step=n``, ``optim_step=n``,
``metrics={n: {"train_mean_nll": x}}``). A test changes
what a stage does at one step through *hooks*: ``{(stage, step): fn}``, where ``fn(ctx)`` runs
inside the stage after its own work (to raise, read the store, send a signal, ...).

Run as a script, it drives one attempt in a process of its own and exits with the runner's
code, for the tests that need signals or a process that dies::

    python fakeflow.py start|resume DB_URL HOME RUN_ID [--steps N] [--save-every K]
        [--marker PATH --marker-at STAGE:STEP] [--stall]

``--marker`` writes PATH at that stage and step, then waits there until the process is
signalled, so the signal lands at a known point; with ``--stall`` it then stays there for a
minute whatever happens, as a torch operation that a signal cannot interrupt would.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from kitchen.config import config_hash, redacted
from kitchen.engine import events as ev
from kitchen.engine.runner import Identity, Runner
from kitchen.engine.state import Recorded, RunState, fold
from kitchen.spec import Loop, Stage, Workflow
from kitchen.stage_api import Ports, StageContext, StageFn, StageResult

RUN_ID = "fake-run"
VERSIONS = {"python": "3.11", "kitchen": "test"}


class FakeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = 3
    save_every: int = 0
    api_key: SecretStr | None = None


def steps_done(view: Any) -> int:
    return int(view.resources.next_step)


def save_due(view: Any) -> bool:
    n, every = steps_done(view), int(view.config.save_every)
    return every > 0 and n % every == 0 and n < int(view.config.steps)


def more_batches(view: Any) -> bool:
    return steps_done(view) < int(view.config.steps)


WORKFLOW = Workflow(
    name="fake",
    body=(
        Stage("setup", setup=True),
        Loop(
            "batch",
            body=(
                Stage("get_batch", hot=True),
                Stage("train", hot=True),
                Stage("log_step_metrics", hot=True),
                Stage("save_checkpoint", when="save_due"),
            ),
            again="more_batches",
        ),
    ),
    teardown=(Stage("cleanup"),),
    conditions={"save_due": save_due, "more_batches": more_batches},
    step_metric="train_mean_nll",
    progress_metrics=("train_mean_nll",),
    resources=types.SimpleNamespace,
)


class FakeService:
    """The training port of a run that trains nothing: it only has to close."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    def verify_checkpoint(self, uri: str, sha256: str) -> bool:
        return False

    def describe(self) -> dict[str, str]:
        return {"backend": "fake"}


def fake_ports(blobs: Any) -> Ports:
    return Ports(training=FakeService(), datasets=None, blobs=blobs)  # type: ignore[arg-type]


Hook = Callable[[StageContext[Any, Any]], None]
Hooks = Mapping[tuple[str, int], Hook]
Loss = Callable[[int, int], float]


def loss(step: int, attempt: int) -> float:
    """The fake training loss: the same on every attempt unless a test says otherwise."""
    return 1.0 / (step + 1)


def make_stages(hooks: Hooks | None = None, train_loss: Loss = loss) -> dict[str, StageFn]:
    hooks = dict(hooks or {})

    def hook(ctx: StageContext[Any, Any], step: int) -> None:
        fn = hooks.get((ctx.stage.name, step))
        if fn is not None:
            fn(ctx)

    def setup(ctx: StageContext[Any, Any]) -> dict[str, Any]:
        r = ctx.resources
        r.next_step = 0
        if ctx.resume is not None and ctx.resume.path is not None:
            r.next_step = json.loads((ctx.resume.path / "cursor.json").read_text())["next_step"]
        hook(ctx, ctx.state.step)
        return {}

    def get_batch(ctx: StageContext[Any, Any]) -> StageResult:
        r = ctx.resources
        r.batch, r.next_step = r.next_step, r.next_step + 1
        hook(ctx, r.batch)
        return StageResult(step=r.batch)

    def train(ctx: StageContext[Any, Any]) -> StageResult:
        r = ctx.resources
        r.loss = train_loss(r.batch, ctx.attempt)
        hook(ctx, r.batch)
        return StageResult(step=r.batch, optim_step=r.batch)

    def log_step_metrics(ctx: StageContext[Any, Any]) -> StageResult:
        r = ctx.resources
        hook(ctx, r.batch)
        return StageResult(step=r.batch, metrics={r.batch: {"train_mean_nll": r.loss}})

    def save_checkpoint(ctx: StageContext[Any, Any]) -> StageResult:
        n = ctx.resources.next_step
        name = f"step-{n:06d}"

        def fill(tmp: Path) -> None:
            (tmp / "cursor.json").write_text(json.dumps({"next_step": n}))

        ref = ctx.blobs.write_dir(f"{ctx.run_id}/checkpoints/{name}", fill)
        hook(ctx, ctx.resources.batch)
        saved = ev.CheckpointSaved(
            name=name,
            step=n,
            epoch=0,
            uri=ref.uri,
            sha256=ref.sha256,
            bytes=ref.bytes,
            machine_state=ctx.stage.slot,
            cursor={"epoch": 0, "batch_index": n},
        )
        return StageResult({"name": name}, events=(saved,))

    def cleanup(ctx: StageContext[Any, Any]) -> dict[str, Any]:
        hook(ctx, ctx.state.step)
        return {}

    return {
        "setup": setup,
        "get_batch": get_batch,
        "train": train,
        "log_step_metrics": log_step_metrics,
        "save_checkpoint": save_checkpoint,
        "cleanup": cleanup,
    }


def created(run_id: str, config: FakeConfig) -> ev.RunCreated:
    record = redacted(config)
    return ev.RunCreated(
        recipe="fake",
        workflow=WORKFLOW.name,
        config=record,
        config_hash=config_hash(record),
        seed=0,
        versions=dict(VERSIONS),
        run_dir=run_id,
    )


def identity(config: FakeConfig) -> Identity:
    return Identity(config_hash(redacted(config)), None, dict(VERSIONS), None)


def make_runner(
    store: Any,
    home: Path,
    *,
    config: FakeConfig | None = None,
    hooks: Hooks | None = None,
    train_loss: Loss = loss,
    blobs: Any = None,
    telemetry: Any = None,
    handle_signals: bool = False,
    lease_ttl_s: float = 60.0,
    run_id: str = RUN_ID,
    snapshot_every: int = 10_000,
    commit_window_s: float = 0.0,
) -> Runner:
    """A runner of the fake workflow that checks the lease and cancellation at every stage."""
    return Runner(
        store=store,
        workflow=WORKFLOW,
        stages=make_stages(hooks, train_loss),
        run_id=run_id,
        config=config or FakeConfig(),
        home=home,
        ports=fake_ports(blobs),
        telemetry=telemetry,
        lease_ttl_s=lease_ttl_s,
        check_every_s=0.0,
        handle_signals=handle_signals,
        snapshot_every=snapshot_every,
        commit_window_s=commit_window_s,
    )


# --------------------------------------------------------------------------- reading the log


def brief(type_name: str, payload: Mapping[str, Any]) -> tuple[Any, ...]:
    """An event as the tests spell it: its type, then the stage and step it concerns."""
    if type_name in ("StageStarted", "StageCompleted", "StageFailed"):
        return (type_name, payload["stage"], payload["step"])
    if type_name in ("AttemptStarted", "AttemptInterrupted"):
        return (type_name, payload["attempt"])
    if type_name in ("CheckpointSaved", "RunCompleted", "RunCancelled", "DeterminismMismatch"):
        return (type_name, payload["step"])
    return (type_name,)


def history(store: Any, run_id: str = RUN_ID) -> list[tuple[Any, ...]]:
    """The committed events of the run, briefly."""
    return [brief(e.type, e.payload) for e in store.read(run_id)]


def folded(store: Any, run_id: str = RUN_ID) -> RunState:
    records = [
        Recorded(e.seq, e.recorded_at, ev.decode(e.type, e.schema_version, e.payload))
        for e in store.read(run_id)
    ]
    return fold(run_id, records)


# --------------------------------------------------------------------------- worker process


def _wait_for_signal(marker: Path, stall: bool = False) -> Hook:
    def wait(ctx: StageContext[Any, Any]) -> None:
        marker.write_text("started")
        deadline = time.monotonic() + (60.0 if stall else 30.0)
        while (stall or not ctx.interrupted()) and time.monotonic() < deadline:
            time.sleep(0.01)

    return wait


def main(argv: list[str]) -> int:
    from kitchen.adapters.blobs import LocalBlobStore
    from kitchen.store import open_store

    parser = argparse.ArgumentParser(prog="fakeflow")
    parser.add_argument("command", choices=("start", "resume"))
    parser.add_argument("db_url")
    parser.add_argument("home", type=Path)
    parser.add_argument("run_id")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--save-every", type=int, default=0)
    parser.add_argument("--marker", type=Path)
    parser.add_argument("--marker-at", default="train:1")
    parser.add_argument("--stall", action="store_true")
    args = parser.parse_args(argv)

    hooks: dict[tuple[str, int], Hook] = {}
    if args.marker is not None:
        stage, _, step = args.marker_at.partition(":")
        hooks[(stage, int(step))] = _wait_for_signal(args.marker, args.stall)
    config = FakeConfig(steps=args.steps, save_every=args.save_every)
    with open_store(args.db_url) as store:
        runner = make_runner(
            store,
            args.home,
            config=config,
            hooks=hooks,
            blobs=LocalBlobStore(args.home),
            handle_signals=True,
            run_id=args.run_id,
        )
        if args.command == "start":
            return runner.start(created(args.run_id, config))
        return runner.resume(identity(config))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
