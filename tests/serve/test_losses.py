"""Every loss of the local backend through the protobuf wire, against the backend directly.

The request bodies are made by the SDK's own conversion (``tinker.proto.request_conv``) and
the results read by its own decoder (``tinker.proto.response_conv``), so the wire format is
the SDK's; the expected values come from a LocalTrainingClient built with the same seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kitchen.cli.serve import open_ports
from kitchen.serve import keys
from kitchen.serve.app import create_app
from kitchen.serve.settings import ServeSettings

API = "/api/v1"
TOKENS = [5, 9, 14, 3, 22, 7]
SEED, RANK = 4, 2


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    key, _ = keys.create(tmp_path / "serve")
    settings = ServeSettings(home=tmp_path, long_poll_s=5.0)
    with open_ports(settings) as ports, TestClient(create_app(settings, ports)) as c:
        h = {"X-API-Key": key}
        sid = c.post(f"{API}/create_session", json={}, headers=h).json()["session_id"]
        r = c.post(
            f"{API}/create_model",
            headers=h,
            json={
                "session_id": sid,
                "model_seq_id": 0,
                "base_model": "kitchen/tiny",
                "lora_config": {"rank": RANK, "seed": SEED},
            },
        ).json()
        wait(c, h, r["request_id"])
        yield {"client": c, "headers": h, "model_id": r["model_id"], "seq": 1}


def wait(c: TestClient, h: dict[str, str], rid: str) -> Any:
    while True:
        r = c.post(f"{API}/retrieve_future", json={"request_id": rid}, headers=h)
        assert r.status_code == 200, r.text
        if r.headers["content-type"].startswith("application/x-protobuf"):
            return r.content
        if r.json().get("type") != "try_again":
            return r.json()


CASES = [
    ("cross_entropy", {"weights": [0.0, 1.0, 1.0, 0.5, 1.0, 1.0]}, None),
    (
        "importance_sampling",
        {
            "logprobs": [-1.0, -2.0, -3.0, -1.5, -2.5, -0.5],
            "advantages": [0.5, -1.0, 1.0, 0.0, 2.0, -0.5],
        },
        None,
    ),
    (
        "ppo",
        {
            "logprobs": [-6.0, -5.0, -4.0, -5.5, -6.5, -5.0],
            "advantages": [0.5, -1.0, 1.0, 0.2, 2.0, -0.5],
        },
        {"clip_low_threshold": 0.7, "clip_high_threshold": 1.3},
    ),
]


@pytest.mark.parametrize(("loss", "inputs", "config"), CASES)
def test_every_loss_matches_the_backend(
    served: dict[str, Any], loss: str, inputs: dict[str, list[float]], config: Any
) -> None:
    from tinker import types
    from tinker.proto.request_conv import forward_backward_request_to_proto
    from tinker.proto.response_conv import deserialize_forward_backward_output

    from kitchen.adapters.local_torch import LocalTrainingClient
    from kitchen.types import Datum, ModelInput, TensorData

    targets = [*TOKENS[1:], 1]
    out = []
    for forward_only in (True, False):
        req = types.ForwardBackwardRequest(
            forward_backward_input=types.ForwardBackwardInput(
                data=[
                    types.Datum(
                        model_input=types.ModelInput.from_ints(TOKENS),
                        loss_fn_inputs={"target_tokens": targets, **inputs},
                    )
                ],
                loss_fn=loss,
                loss_fn_config=config,
            ),
            model_id=served["model_id"],
            seq_id=served["seq"],
        )
        served["seq"] += 1
        msg = forward_backward_request_to_proto(req)
        msg.forward_only = forward_only
        r = served["client"].post(
            f"{API}/forward_backward",
            content=msg.SerializeToString(),
            headers={**served["headers"], "content-type": "application/x-protobuf"},
        )
        assert r.status_code == 200, r.text
        out.append(
            deserialize_forward_backward_output(
                wait(served["client"], served["headers"], r.json()["request_id"])
            )
        )

    local = LocalTrainingClient(model_name="kitchen/tiny", lora_rank=RANK, seed=SEED)
    datum = Datum(
        ModelInput.from_ints(TOKENS),
        {
            "target_tokens": TensorData.from_list(targets, "int64"),
            **{k: TensorData.from_list(v, "float32") for k, v in inputs.items()},
        },
    )
    want = local.forward_backward([datum], loss, config).result()
    local.close()
    for got in out:  # forward_only and forward_backward report the same loss and logprobs
        assert got.metrics["loss:sum"] == pytest.approx(want.metrics["loss:sum"], abs=1e-6)
        assert list(got.loss_fn_outputs[0]["logprobs"].data) == pytest.approx(
            list(want.loss_fn_outputs[0]["logprobs"].data), abs=1e-6
        )


def test_a_loss_the_backend_lacks_is_refused_in_one_line(served: dict[str, Any]) -> None:
    from tinker.proto import tinker_public_pb2 as pb

    msg = pb.ForwardBackwardRequest(model_id=served["model_id"], seq_id=1, loss_fn="cispo")
    r = served["client"].post(
        f"{API}/forward_backward",
        content=msg.SerializeToString(),
        headers={**served["headers"], "content-type": "application/x-protobuf"},
    )
    assert r.status_code == 400
    assert "cispo" in json.loads(r.text)["error"]
