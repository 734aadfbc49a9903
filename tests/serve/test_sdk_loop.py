"""The acceptance loop through the unmodified tinker SDK equals the same loop in-process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import Server, base_env, run_loop

pytestmark = pytest.mark.slow
TOL = 1e-6


def assert_same(served: dict[str, Any], ref: dict[str, Any]) -> None:
    assert len(served["losses"]) == len(ref["losses"]) == 5
    for a, b in zip(served["losses"], ref["losses"], strict=True):
        assert abs(a - b) <= TOL * max(1.0, abs(b)), (served["losses"], ref["losses"])
    for a, b in zip(served["grad_norms"], ref["grad_norms"], strict=True):
        assert abs(a - b) <= TOL * max(1.0, abs(b))
    assert served["greedy"] == ref["greedy"]
    assert served["seeded"] == ref["seeded"]
    for a, b in zip(served["greedy_logprobs"][0], ref["greedy_logprobs"][0], strict=True):
        assert abs(a - b) <= TOL
    assert served["prompt_logprobs"][0] is None and ref["prompt_logprobs"][0] is None
    for a, b in zip(served["prompt_logprobs"][1:], ref["prompt_logprobs"][1:], strict=True):
        assert abs(a - b) <= TOL
    assert abs(served["custom_loss"] - ref["custom_loss"]) <= TOL * max(
        1.0, abs(ref["custom_loss"])
    )
    assert served["external"] == ref["external"]


def sampler_files(home: Path) -> dict[str, str]:
    (folder,) = [p for p in home.glob("serve/owners/*/runs/*/sampler_weights/*") if p.is_dir()]
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if not p.name.startswith(".")
    }


def test_sdk_loop_equals_in_process(
    server: Server, serve_home: tuple[Path, str], reference: dict[str, Any], tmp_path: Path
) -> None:
    home, key = serve_home
    server.start()
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    env["TINKER_TELEMETRY"] = "1"  # the SDK's telemetry goes to /telemetry, which accepts it
    served = run_loop("served", tmp_path / "served.json", env)
    assert_same(served, reference)
    assert sampler_files(home) == reference["sampler_files"]
    assert key not in json.dumps(served)
