"""The RL workflow's declarations and its rollouts stage, on fakes: a record is reused, a
missing or corrupt one is sampled again with per-group seeds, and retention picks old steps."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kitchen.engine.state import ArtifactRecord, Checkpoint, RunState
from kitchen.ports import BlobRef
from kitchen.spec import Stage
from kitchen.stage_api import Ports, StageContext
from kitchen.types import CompletedFuture, ModelInput, SampledSequence, SampleResponse
from kitchen.workflows.common.loop import Cursor, Plan
from kitchen.workflows.rl import WORKFLOW
from kitchen.workflows.rl.arith import ProblemGroupBuilder
from kitchen.workflows.rl.config import RLConfig
from kitchen.workflows.rl.resources import RLResources
from kitchen.workflows.rl.rollout import group_seed
from kitchen.workflows.rl.stages import rollouts
from kitchen.workflows.rl.stages.save_checkpoint import _expired


class Renderer:
    def build_generation_prompt(self, messages: Any) -> ModelInput:
        return ModelInput.from_ints([ord(c) for c in messages[-1]["content"]])

    def get_stop_sequences(self) -> list[int]:
        return [0]

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, str], bool]:
        body = list(tokens)[: list(tokens).index(0)] if 0 in tokens else list(tokens)
        return {"content": "".join(chr(t) for t in body)}, 0 in tokens


class Blobs:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def write_bytes(self, key: str, data: bytes) -> BlobRef:
        self.data[key] = data
        return BlobRef(key, hashlib.sha256(data).hexdigest(), len(data))

    def read_bytes(self, uri: str) -> bytes:
        return self.data[uri]

    def verify(self, ref: BlobRef) -> bool:
        got = self.data.get(ref.uri)
        return got is not None and hashlib.sha256(got).hexdigest() == ref.sha256


class Sampler:
    """Answers "7" then stop to every prompt; remembers the seeds it was given."""

    def __init__(self, seeds: list[int]) -> None:
        self.seeds = seeds

    def sample(self, prompt: ModelInput, num_samples: int, params: Any) -> Any:
        self.seeds.append(params.seed)
        seq = SampledSequence((ord("7"), 0), (-0.25, -0.5), "stop")
        return CompletedFuture(SampleResponse((seq,) * num_samples))

    def close(self) -> None:
        pass


class Training:
    def __init__(self) -> None:
        self.seeds: list[int] = []

    def sampling_client(self) -> Sampler:
        return Sampler(self.seeds)


class Dataset:
    def __len__(self) -> int:
        return 10

    def get_batch(self, index: int) -> list[ProblemGroupBuilder]:
        rows = [{"prompt": [{"content": f"q{index}-{g}"}], "answer": "7"} for g in range(2)]
        return [
            ProblemGroupBuilder(row, Renderer(), lambda r, c: c == r["answer"], 0.1, 3)  # type: ignore[arg-type]
            for row in rows
        ]


def _ctx(tmp_path: Path, state: RunState, blobs: Blobs, step: int = 4) -> Any:
    r = RLResources()
    r.training = Training()  # type: ignore[assignment]
    r.dataset = Dataset()
    r.plan = Plan(20, 2, 10, 10)
    r.cursor = Cursor(epoch=0, batch_index=step, step=step)
    return StageContext(
        run_id="unit",
        attempt=1,
        config=RLConfig(seed=3),
        resources=r,
        state=state,
        stage=Stage("rollouts"),
        home=tmp_path,
        run_dir=tmp_path,
        ports=Ports(training=None, datasets=None, blobs=blobs),  # type: ignore[arg-type]
        resume=None,
        interrupted=lambda: False,
        on_close=lambda fn: None,
    )


def test_the_workflow_declares_its_own_facts() -> None:
    assert WORKFLOW.step_metric == "optim/loss"
    assert WORKFLOW.rows is not None and WORKFLOW.rows.columns == ("prompt",)
    hot = {s.name for s in WORKFLOW.stages() if s.hot}
    assert "rollouts" not in hot  # its record is committed before the gradient stages
    assert hot == {
        "compute_advantages",
        "forward_backward",
        "optim_step",
        "await_future",
        "log_step_metrics",
    }


def test_a_step_without_a_record_samples_once_per_group_and_records_it(tmp_path: Path) -> None:
    blobs = Blobs()
    ctx = _ctx(tmp_path, RunState(run_id="unit"), blobs)
    result = rollouts.run(ctx)
    assert result.outputs["sampled"] is True
    assert ctx.resources.training.seeds == [group_seed(3, 4, 0), group_seed(3, 4, 1)]
    (art,) = result.artifacts
    assert (art.kind, art.step, art.uri) == (
        "rollouts",
        4,
        "unit/artifacts/rollouts/step-000004.json",
    )
    groups = ctx.resources.batch.groups
    assert [len(g.trajectories) for g in groups] == [3, 3]
    assert groups[0].get_total_rewards() == [1.0, 1.0, 1.0]
    assert ctx.resources.cursor.step == 5


@pytest.mark.parametrize("superseded", [False, True])
def test_a_recorded_step_is_reused_without_sampling(tmp_path: Path, superseded: bool) -> None:
    blobs = Blobs()
    first = _ctx(tmp_path, RunState(run_id="unit"), blobs)
    art = rollouts.run(first).artifacts[0]
    record = ArtifactRecord(40, art.kind, art.uri, art.sha256, art.bytes, art.step)
    state = RunState(
        run_id="unit", artifacts=(record,), superseded=((30, 50),) if superseded else ()
    )
    again = _ctx(tmp_path, state, blobs)
    result = rollouts.run(again)
    assert result.outputs["sampled"] is False
    assert again.resources.training.seeds == []
    assert result.artifacts == (art,)  # recorded again for the effective history
    assert again.resources.batch.groups == first.resources.batch.groups


def test_a_record_whose_blob_does_not_verify_is_sampled_again(tmp_path: Path) -> None:
    blobs = Blobs()
    art = rollouts.run(_ctx(tmp_path, RunState(run_id="unit"), blobs)).artifacts[0]
    blobs.data[art.uri] = b"corrupt"
    record = ArtifactRecord(40, art.kind, art.uri, art.sha256, art.bytes, art.step)
    ctx = _ctx(tmp_path, RunState(run_id="unit", artifacts=(record,)), blobs)
    assert rollouts.run(ctx).outputs["sampled"] is True
    assert blobs.verify(BlobRef(art.uri, art.sha256, art.bytes))  # the same bytes again


def test_retention_picks_the_rollouts_before_the_oldest_kept_checkpoint(tmp_path: Path) -> None:
    from kitchen.stage_api import CheckpointDeleted, CheckpointSaved, StageResult

    def ckpt(seq: int, step: int) -> Checkpoint:
        return Checkpoint(seq, f"step-{step:06d}", step, 0, f"c{step}", "x", 1, "s", {}, False)

    arts = tuple(ArtifactRecord(10 + s, "rollouts", f"r{s}", "x", 1, s) for s in range(6))
    state = RunState(run_id="unit", checkpoints=(ckpt(20, 2), ckpt(30, 4)), artifacts=arts)
    saved = CheckpointSaved(
        name="step-000006",
        step=6,
        epoch=0,
        uri="c6",
        sha256="x",
        bytes=1,
        machine_state="s",
        cursor={},
        final=False,
    )
    dropped = CheckpointDeleted(checkpoint_seq=20, uri="c2", step=2)
    result = StageResult(events=(saved, dropped))
    ctx = _ctx(tmp_path, state, Blobs())
    assert [a.step for a in _expired(ctx, result)] == [0, 1, 2, 3]
