"""The preference workflow's declaration and its reference stage, without a model.

The reference stage gets a real StageContext on an in-memory blob store and a factory whose
clients give every token the log-probability -0.5, so each test is about what the stage
decides: compute, reuse, record again, or replace a blob that failed its hash.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from kitchen.engine.state import ArtifactRecord, RunState
from kitchen.ports import BlobRef
from kitchen.spec import Stage
from kitchen.stage_api import ArtifactDeleted, Ports, StageContext
from kitchen.types import Datum, ForwardBackwardOutput, ModelInput, TensorData
from kitchen.workflows.preference import WORKFLOW
from kitchen.workflows.preference.config import PreferenceConfig
from kitchen.workflows.preference.resources import PreferenceResources
from kitchen.workflows.preference.stages import compute_reference_logprobs as stage

KEY = "unit/artifacts/reference_logprobs/logprobs.safetensors"


class Blobs:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write_bytes(self, key: str, data: bytes) -> BlobRef:
        self.files[key] = data
        return BlobRef(key, hashlib.sha256(data).hexdigest(), len(data))

    def read_bytes(self, uri: str) -> bytes:
        return self.files[uri]

    def verify(self, ref: BlobRef) -> bool:
        data = self.files.get(ref.uri)
        return data is not None and hashlib.sha256(data).hexdigest() == ref.sha256


class Client:
    def forward(self, data: list[Datum], loss_fn: str = "cross_entropy") -> Future[Any]:
        outs = tuple(
            {"logprobs": TensorData.from_list([-0.5] * d.model_input.length, "float32")}
            for d in data
        )
        f: Future[Any] = Future()
        f.set_result(ForwardBackwardOutput(outs, {}))
        return f

    def close(self) -> None:
        pass


class Factory:
    def __init__(self) -> None:
        self.opened = 0

    def create_lora_training_client(self, *args: Any, **kwargs: Any) -> Client:
        self.opened += 1
        return Client()


def _datum(completion: int) -> Datum:
    n = 3 + completion
    weights = [0.0] * 3 + [1.0] * completion
    return Datum(
        ModelInput.from_ints(list(range(n))),
        {
            "target_tokens": TensorData.from_list(list(range(1, n + 1)), "int64"),
            "weights": TensorData.from_list(weights, "float32"),
        },
    )


def _ctx(state: RunState, blobs: Blobs, factory: Factory, tmp_path: Path) -> Any:
    r = PreferenceResources()
    r.pairs = [(_datum(1), _datum(2)), (_datum(3), _datum(1))]
    r.test_pairs = [(_datum(2), _datum(2))]
    return StageContext(
        run_id="unit",
        attempt=2,
        config=PreferenceConfig(),
        resources=r,
        state=state,
        stage=Stage("compute_reference_logprobs"),
        home=tmp_path,
        run_dir=tmp_path,
        ports=Ports(training=factory, datasets=None, blobs=blobs),  # type: ignore[arg-type]
        resume=None,
        interrupted=lambda: False,
        on_close=lambda fn: None,
    )


def _record(blobs: Blobs, seq: int = 10) -> ArtifactRecord:
    ref = blobs.write_bytes(KEY, b"placeholder")
    return ArtifactRecord(seq, "reference_logprobs", ref.uri, ref.sha256, ref.bytes, 0)


def test_the_workflow_declares_its_own_facts() -> None:
    assert WORKFLOW.step_metric == "dpo_loss"
    assert WORKFLOW.rows is not None and WORKFLOW.rows.columns == ("prompt", "chosen", "rejected")
    assert [s.name for s in WORKFLOW.stages() if s.option("setup")] == [
        "load_dataset",
        "init_tokenizer",
        "build_preference_dataset",
        "compute_reference_logprobs",
        "init_session",  # after the reference: the policy never serves as the reference
    ]


def test_first_time_it_computes_from_a_client_of_its_own(tmp_path: Path) -> None:
    blobs, factory = Blobs(), Factory()
    ctx = _ctx(RunState(run_id="unit"), blobs, factory, tmp_path)
    res = stage.run(ctx)
    assert factory.opened == 1 and res.outputs["computed"] is True
    assert [a.kind for a in res.artifacts] == ["reference_logprobs"]
    assert res.artifacts[0].uri == KEY
    # completion tokens × -0.5: pairs (1, 2) and (3, 1) tokens, held-out (2, 2)
    assert ctx.resources.reference.train.tolist() == [[-0.5, -1.0], [-1.5, -0.5]]
    assert ctx.resources.reference.test.tolist() == [[-1.0, -1.0]]


def test_a_sound_blob_on_record_is_reused_without_a_client(tmp_path: Path) -> None:
    blobs, factory = Blobs(), Factory()
    first = _ctx(RunState(run_id="unit"), blobs, factory, tmp_path)
    a = stage.run(first).artifacts[0]
    record = ArtifactRecord(10, a.kind, a.uri, a.sha256, a.bytes, 0)
    again = _ctx(RunState(run_id="unit", artifacts=(record,)), blobs, factory, tmp_path)
    res = stage.run(again)
    assert factory.opened == 1 and res.outputs["computed"] is False
    assert res.artifacts == ()
    assert again.resources.reference.train.tolist() == [[-0.5, -1.0], [-1.5, -0.5]]


def test_a_superseded_record_is_recorded_again_not_recomputed(tmp_path: Path) -> None:
    blobs, factory = Blobs(), Factory()
    a = stage.run(_ctx(RunState(run_id="unit"), blobs, factory, tmp_path)).artifacts[0]
    record = ArtifactRecord(10, a.kind, a.uri, a.sha256, a.bytes, 0)
    state = RunState(run_id="unit", artifacts=(record,), superseded=((1, 40),))
    res = stage.run(_ctx(state, blobs, factory, tmp_path))
    assert factory.opened == 1 and res.outputs["computed"] is False
    assert res.artifacts == (a,)


def test_a_blob_that_fails_its_hash_is_recomputed_and_the_record_deleted(tmp_path: Path) -> None:
    blobs, factory = Blobs(), Factory()
    record = _record(blobs)
    blobs.files[KEY] = b"damaged"
    res = stage.run(_ctx(RunState(run_id="unit", artifacts=(record,)), blobs, factory, tmp_path))
    assert factory.opened == 1 and res.outputs["computed"] is True
    assert res.outputs["replaces_failed_seq"] == 10
    assert res.events == (ArtifactDeleted(artifact_seq=10, kind="reference_logprobs", uri=KEY),)
