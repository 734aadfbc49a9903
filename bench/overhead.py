"""Step overhead: kitchen beside a hand-written torch + peft loop on the same model and batches.

(a) a plain loop written by hand (pad, forward, weighted NLL, backward, AdamW), (b) kitchen's
sl_basic on SQLite, (c) kitchen on Postgres when KITCHEN_TEST_POSTGRES_URL is set. All three train
the same LoRA on the same rendered batches for the same number of steps, in one process, with the
repeats interleaved (a, b, c, a, b, c, ..., a) so machine noise hits them alike, and each kitchen
run's ratio taken to the mean of the plain runs just before and after it. A step's wall time
is the training loop's time divided by its steps: for kitchen from the end of the first
``set_epoch`` to the end of the last ``log_step_metrics`` (so set-up, evaluation and the final
save are excluded, as they are for the plain loop), every event durably committed per step.

Then one more kitchen run, profiled (cProfile, main thread) over its training loop only, breaks
kitchen's own time down into the store, spans, machine, fold and metrics.

    python bench/overhead.py [--steps 40] [--repeats 5] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def settings(args: argparse.Namespace) -> list[str]:
    return [
        f"max_steps={args.steps}",
        f"batch_size={args.batch_size}",
        "save_every=0",
        "eval_every=0",
        "eval_examples=8",
        "eval_max_tokens=4",
        f"model_name={args.model}",
    ]


def rendered_batches(cfg: Any) -> list[list[Any]]:
    """The batches sl_basic trains on, in its order (same renderer, truncation and shuffle)."""
    from transformers import AutoTokenizer

    from kitchen.adapters.hf_datasets import HFDatasetStore
    from kitchen.embedded import resolve_model
    from kitchen.renderers import TrainOnWhat, datum_from_model_input_weights, get_renderer
    from kitchen.workflows.common.data import train_and_test
    from kitchen.workflows.common.loop import epoch_order

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(cfg.model_name))
    renderer = get_renderer(cfg.renderer_name, tokenizer)
    train, _ = train_and_test(HFDatasetStore(), cfg.dataset, cfg.test_size, ("messages",))
    data = []
    for row in train:
        mi, w = renderer.build_supervised_example(row["messages"], TrainOnWhat(cfg.train_on_what))
        data.append(datum_from_model_input_weights(mi, w, cfg.max_length))
    order = epoch_order(len(data), cfg.seed, 0)
    bs = cfg.batch_size
    return [[data[i] for i in order[k * bs : (k + 1) * bs]] for k in range(cfg.max_steps)]


def logged_steps(result: Any) -> int:
    """Steps a stage logged: ``StageResult.metrics``, or the ``steps`` output of kitchen
    before the workflow-neutral engine (so one script times both, side by side)."""
    metrics = getattr(result, "metrics", None)
    if metrics is None:
        metrics = result.get("steps") or {}
    return len(metrics)


class LoopTimer:
    """A reporter that notes when the training loop starts and when its last step is logged."""

    def __init__(self, profiler: cProfile.Profile | None = None, steps: int = 0) -> None:
        self.profiler = profiler
        self.total = steps
        self.start: float | None = None
        self.end: float | None = None
        self.steps = 0

    def created(self, state: Any) -> None: ...

    def started(self, state: Any, workflow: Any = None) -> None: ...

    def stage_done(self, stage: Any, outputs: Any, state: Any) -> None:
        now = time.perf_counter()
        if stage.name == "set_epoch" and self.start is None:
            self.start = now
            if self.profiler is not None:
                self.profiler.enable()
        logged = logged_steps(outputs)
        if stage.name == "log_step_metrics" and logged:
            self.end = now
            self.steps += logged
            if self.profiler is not None and self.steps == self.total:
                self.profiler.disable()

    def finished(self, state: Any, code: int) -> None: ...


def kitchen_step_time(
    args: argparse.Namespace,
    db_url: str,
    home: Path,
    tag: str,
    profiler: cProfile.Profile | None = None,
) -> float:
    try:
        from kitchen.engine import launch
    except ImportError:  # a commit from before kitchen/engine/ (bench/ab.py measures those too)
        from kitchen import launch  # type: ignore[no-redef]
    from kitchen.store import open_store

    os.environ["KITCHEN_HOME"] = str(home)
    prepared = launch.prepare("sl_basic", settings(args), None)
    store = open_store(db_url)
    timer = LoopTimer(profiler, args.steps)
    code = launch.start(prepared, store, f"overhead-{tag}", timer)  # type: ignore[arg-type]
    store.close()
    assert code == 0 and timer.start and timer.end and timer.steps == args.steps, code
    return (timer.end - timer.start) / args.steps


def plain_step_time(args: argparse.Namespace, batches: list[list[Any]], lr: float) -> float:
    import torch
    from local_backend import PlainLoop

    plain = PlainLoop(str(args.model_dir))
    with torch.no_grad():  # kitchen evaluates before training: warm the forward pass alike
        ids, mask, _, _ = plain.tensors(batches[0])
        plain.model(input_ids=ids, attention_mask=mask)
    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        for group in plain.optimizer.param_groups:  # the same linear schedule as sl_basic
            group["lr"] = lr * (1 - i / len(batches))
        plain.step(batch)
    return (time.perf_counter() - t0) / len(batches)


GROUPS = {
    "store (appends, leases)": ("kitchen/store/", "/store/", "sqlalchemy", "psycopg", "sqlite3"),
    "spans and metrics (OTel)": ("opentelemetry", "kitchen/engine/telemetry.py"),
    "machine (transitions)": ("kitchen/engine/machine.py", "transitions/"),
    "events and fold": ("kitchen/engine/state.py", "kitchen/engine/events.py", "pydantic"),
    "step metrics (jsonl, progress)": ("log_step_metrics.py", "json/"),
}


def profile_breakdown(args: argparse.Namespace, db_url: str, home: Path) -> dict[str, float]:
    """Self time (main thread) per group, in ms per step, over the training loop of one run."""
    prof = cProfile.Profile()
    kitchen_step_time(args, db_url, home, "profiled", prof)
    stats = pstats.Stats(prof)
    out = dict.fromkeys(GROUPS, 0.0)
    out["other kitchen code"] = 0.0
    for (path, _line, _fn), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for group, needles in GROUPS.items():
            if any(n in path for n in needles):
                out[group] += tottime
                break
        else:
            if "/kitchen/" in path and "adapters/local_torch" not in path and "stages/" not in path:
                out["other kitchen code"] += tottime
    return {k: v * 1000 / args.steps for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="kitchen/tiny")
    parser.add_argument(
        "--json", action="store_true", help="print the ratios to plain as one JSON line"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    from kitchen import config as kconfig
    from kitchen.adapters.local_torch import worker
    from kitchen.embedded import resolve_model
    from kitchen.recipes.sl_basic import Config

    cfg: Any = kconfig.build(Config, {}, kconfig.parse_overrides(settings(args)))
    args.model_dir = resolve_model(args.model)
    batches = rendered_batches(cfg)
    pg = os.environ.get("KITCHEN_TEST_POSTGRES_URL")
    times: dict[str, list[float]] = {"plain": [], "sqlite": []}
    if pg:
        times["postgres"] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        pg_url = _fresh_pg_schema(pg) if pg else None
        for r in range(args.repeats):
            # On the process's torch thread, as kitchen's backend runs: two threads driving
            # torch would each spin an OpenMP team and slow both loops alike.
            times["plain"].append(worker.run(plain_step_time, args, batches, cfg.learning_rate))
            home = root / f"sqlite-{r}"
            times["sqlite"].append(
                kitchen_step_time(args, f"sqlite:///{home}/kitchen.db", home, f"s{r}")
            )
            if pg_url:
                times["postgres"].append(kitchen_step_time(args, pg_url, root / f"pg-{r}", f"p{r}"))
            print(
                f"repeat {r + 1}: "
                + "  ".join(f"{k} {v[-1] * 1000:.1f} ms" for k, v in times.items()),
                file=sys.stderr,
            )
        # one more plain run, so that every kitchen run has a plain run on either side
        times["plain"].append(worker.run(plain_step_time, args, batches, cfg.learning_rate))
        if args.json:
            print(json.dumps(ratios_to_plain(times)))
            return
        home = root / "profile"
        costs = profile_breakdown(args, f"sqlite:///{home}/kitchen.db", home)
    report(args, times, costs)


def _fresh_pg_schema(admin_url: str) -> str:
    import uuid

    import sqlalchemy as sa

    url = sa.make_url(admin_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


def ratios_to_plain(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Each kitchen run against the mean of the plain runs just before and just after it
    (which cancels drifts in machine speed slower than one round of runs); medians."""
    around = [(a + b) / 2 for a, b in itertools.pairwise(times["plain"])]
    return {
        name: {
            "ratio to plain": statistics.median(v / p for v, p in zip(vals, around, strict=True)),
            "ms/step": statistics.median(vals) * 1000,
        }
        for name, vals in times.items()
        if name != "plain"
    }


def report(
    args: argparse.Namespace, times: dict[str, list[float]], costs: dict[str, float]
) -> None:
    base = statistics.median(times["plain"])
    # Each kitchen run is compared with the mean of the plain runs just before and just after
    # it, which cancels drifts in machine speed slower than one round of runs.
    around = [(a + b) / 2 for a, b in itertools.pairwise(times["plain"])]
    shape = f"{args.steps} steps x {args.repeats} repeats, batch_size {args.batch_size}"
    print(f"\n{shape}, model {args.model}")
    print("| loop | median ms/step | ratio to plain | per-repeat ratios |")
    print("|---|---|---|---|")
    for name, vals in times.items():
        if name == "plain":
            ratios = [v / base for v in vals]  # the plain loop's own run-to-run spread
        else:
            ratios = [v / p for v, p in zip(vals, around, strict=True)]
        print(
            f"| {name} | {statistics.median(vals) * 1000:.2f} | {statistics.median(ratios):.3f} | "
            + ", ".join(f"{x:.3f}" for x in ratios)
            + " |"
        )
    plain_ms = f"plain step {base * 1000:.1f} ms"
    print(f"\nkitchen's own main-thread time per step (profiled SQLite run; {plain_ms}):")
    print("| part | ms/step | % of a plain step |")
    print("|---|---|---|")
    for name, ms in costs.items():
        print(f"| {name} | {ms:.3f} | {ms / (base * 1000) * 100:.2f} % |")


if __name__ == "__main__":
    main()
