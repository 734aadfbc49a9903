"""Fuzz every JSON endpoint of the served OpenAPI schema: no input may make the server fail.

schemathesis generates bodies, path and query parameters from the schema the server itself
serves (at most 50 examples per endpoint) and sends them with a valid key to a real uvicorn
server; half of the examples get a real session, model and request id in place of the
generated ones, so the fuzzing reaches past the "not found" answers into the models. Every
answer must come within 10 s and be something other than a 5xx.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.conftest import Server

pytestmark = pytest.mark.slow
EXAMPLES = 50
BUDGET_S = 180.0


def real_ids(url: str, key: str) -> dict[str, str]:
    h = {"X-API-Key": key}
    with httpx.Client(base_url=f"{url}/api/v1", headers=h, timeout=60) as c:
        sid = c.post("/create_session", json={"sdk_version": "x"}).json()["session_id"]
        r = c.post(
            "/create_model",
            json={
                "session_id": sid,
                "model_seq_id": 0,
                "base_model": "kitchen/tiny",
                "lora_config": {"rank": 2, "seed": 0},
            },
        ).json()
        for _ in range(30):
            if (
                c.post("/retrieve_future", json={"request_id": r["request_id"]})
                .json()
                .get("model_id")
            ):
                break
    return {
        "session_id": sid,
        "model_id": r["model_id"],
        "request_id": r["request_id"],
        "sampler_id": f"{sid}:sample:0",
    }


def substitute(case: Any, ids: dict[str, str]) -> None:
    for params in (case.path_parameters, case.body):
        if isinstance(params, dict):
            for name, value in ids.items():
                if name in params:
                    params[name] = value


def fuzz(operation: Any, url: str, key: str, ids: dict[str, str], failures: list[str]) -> None:
    """Up to EXAMPLES generated requests to one operation; 5xx or slow answers are noted."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    label = operation.label

    @given(case=operation.as_strategy(), real=st.booleans())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, real: bool) -> None:
        if real:
            substitute(case, ids)
        begin = time.monotonic()
        response = case.call(base_url=url, headers={"X-API-Key": key}, timeout=10)
        took = time.monotonic() - begin
        if response.status_code >= 500 or took > 10:
            failures.append(f"{label}: {response.status_code} in {took:.1f}s {response.text[:200]}")

    run()


def test_no_5xx_from_any_json_endpoint(server: Server, serve_home: tuple[Path, str]) -> None:
    import schemathesis

    _, key = serve_home
    server.start()
    ids = real_ids(server.url, key)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    started = time.monotonic()
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        body = operation.definition.raw.get("requestBody", {}).get("content", {})
        if body and "application/json" not in body:
            continue  # forward_backward's protobuf body: covered by the SDK tests
        tested += 1
        fuzz(operation, server.url, key, ids, failures)
        assert time.monotonic() - started < BUDGET_S, "fuzzing took over 3 minutes"
    assert server.alive()
    assert tested >= 20, tested
    assert not failures, "\n".join(failures[:20])
