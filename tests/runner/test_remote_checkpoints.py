"""Checkpoints that are not local folders: a remote service's references (``tinker://…``).

They are recorded with ``location="remote"``, verified on resume by asking the training port
(not by hashing a blob), and handed back to the set-up stage as the reference itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fakeflow import (
    RUN_ID,
    WORKFLOW,
    FakeConfig,
    FakeService,
    created,
    folded,
    identity,
    make_stages,
)

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine import events as ev
from kitchen.engine.runner import EXIT_OK, Runner
from kitchen.stage_api import Ports, StageContext, StageResult
from kitchen.store import EventStore


class Crash(BaseException):
    """Stops the attempt the way a kill does: no RunFailed, the run stays resumable."""


class RemoteService(FakeService):
    def __init__(self, alive: set[str]) -> None:
        super().__init__()
        self.alive = alive
        self.asked: list[str] = []

    def verify_checkpoint(self, uri: str, sha256: str) -> bool:
        self.asked.append(uri)
        return uri in self.alive and sha256 == hashlib.sha256(uri.encode()).hexdigest()


def _stages(seen: list[Any], crash_at: int | None) -> dict[str, Any]:
    stages = make_stages()

    def setup(ctx: StageContext[Any, Any]) -> StageResult:
        ctx.resources.next_step = 0
        if ctx.resume is not None:
            seen.append((ctx.resume.path, ctx.resume.state_ref()))
            ctx.resources.next_step = int(ctx.resume.checkpoint.cursor["next_step"])
        return StageResult()

    def save_checkpoint(ctx: StageContext[Any, Any]) -> StageResult:
        n = ctx.resources.next_step
        uri = f"tinker://oven/step-{n}"
        saved = ev.CheckpointSaved(
            name=f"step-{n:06d}",
            step=n,
            epoch=0,
            uri=uri,
            sha256=hashlib.sha256(uri.encode()).hexdigest(),
            bytes=0,
            machine_state=ctx.stage.slot,
            cursor={"next_step": n},
            location="remote",
        )
        return StageResult(events=(saved,))

    def train(ctx: StageContext[Any, Any]) -> StageResult:
        if crash_at is not None and ctx.resources.batch == crash_at:
            raise Crash
        ctx.resources.loss = 1.0 / (ctx.resources.batch + 1)
        return StageResult(step=ctx.resources.batch, optim_step=ctx.resources.batch)

    return {**stages, "setup": setup, "save_checkpoint": save_checkpoint, "train": train}


def _runner(store: EventStore, home: Path, service: FakeService, stages: dict[str, Any]) -> Runner:
    return Runner(
        store=store,
        workflow=WORKFLOW,
        stages=stages,
        run_id=RUN_ID,
        config=FakeConfig(steps=6, save_every=2),
        home=home,
        ports=Ports(training=service, datasets=None, blobs=LocalBlobStore(home)),  # type: ignore[arg-type]
        check_every_s=0.0,
        handle_signals=False,
    )


@pytest.mark.parametrize("alive", [True, False])
def test_a_remote_checkpoint_is_verified_by_its_service_and_handed_back(
    store: EventStore, home: Path, alive: bool
) -> None:
    config = FakeConfig(steps=6, save_every=2)
    first = _runner(store, home, FakeService(), _stages([], crash_at=5))
    with pytest.raises(Crash):
        first.start(created(RUN_ID, config))
    state = folded(store)
    assert [(c.uri, c.location) for c in state.checkpoints] == [
        ("tinker://oven/step-2", "remote"),
        ("tinker://oven/step-4", "remote"),
    ]
    newest = {"tinker://oven/step-4"} if alive else set()
    service = RemoteService({"tinker://oven/step-2", *newest})
    seen: list[Any] = []
    assert _runner(store, home, service, _stages(seen, None)).resume(identity(config)) == EXIT_OK
    after = folded(store)
    if alive:
        assert service.asked == ["tinker://oven/step-4"]
        assert seen == [(None, "tinker://oven/step-4")]
    else:  # the newer reference is gone: it is invalidated and the older one is used
        assert service.asked == ["tinker://oven/step-4", "tinker://oven/step-2"]
        assert seen == [(None, "tinker://oven/step-2")]
        assert [c.status for c in after.checkpoints[:2]] == ["live", "invalidated"]
    assert after.status == "completed"
    assert after.optim_steps == (0, 1, 2, 3, 4, 5)
