"""Keys, ownership, paths and limits, against the app in-process (starlette's TestClient runs
its lifespan; the database is a real SQLite file, the model the real embedded one).

Expected outcomes are written by hand: 401 without a valid key, 404 for another key's
things (exactly like missing ones), 400 for a path-like field that tries to leave its folder
(and nothing written outside the owner's folder), 413 for an oversized body.
"""

from __future__ import annotations

import json
import time
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


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    home = tmp_path / "home"
    a, rec_a = keys.create(home / "serve", "a")
    b, _ = keys.create(home / "serve", "b")
    settings = ServeSettings(home=home, max_body_bytes=64 * 1024, long_poll_s=5.0)
    with open_ports(settings) as ports, TestClient(create_app(settings, ports)) as client:
        yield {"client": client, "home": home, "a": a, "b": b, "a_id": rec_a.id}


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def post(env: dict[str, Any], path: str, body: Any, key: str) -> Any:
    return env["client"].post(API + path, json=body, headers=h(key))


def result(env: dict[str, Any], request_id: str, key: str) -> Any:
    for _ in range(20):
        r = post(env, "/retrieve_future", {"request_id": request_id}, key)
        if r.status_code != 200 or r.json().get("type") != "try_again":
            return r
    raise AssertionError("future never resolved")


def session(env: dict[str, Any], key: str) -> str:
    r = post(env, "/create_session", {"tags": [], "sdk_version": "0.38.0"}, key)
    assert r.status_code == 200, r.text
    return str(r.json()["session_id"])


@pytest.fixture
def model(env: dict[str, Any]) -> dict[str, Any]:
    """A's session and model, with one saved state and one sampler checkpoint."""
    sid = session(env, env["a"])
    r = post(
        env,
        "/create_model",
        {
            "session_id": sid,
            "model_seq_id": 0,
            "base_model": "kitchen/tiny",
            "lora_config": {"rank": 2, "seed": 1},
        },
        env["a"],
    )
    assert r.status_code == 200, r.text
    model_id = r.json()["model_id"]
    assert result(env, r.json()["request_id"], env["a"]).json()["model_id"] == model_id
    r = post(env, "/save_weights", {"model_id": model_id, "path": "s1", "seq_id": 1}, env["a"])
    saved = result(env, r.json()["request_id"], env["a"]).json()
    r = post(
        env,
        "/save_weights_for_sampler",
        {"model_id": model_id, "path": "w1", "seq_id": 2},
        env["a"],
    )
    sampler = result(env, r.json()["request_id"], env["a"]).json()
    return {
        "session": sid,
        "model_id": model_id,
        "state": saved["path"],
        "sampler": sampler["path"],
        "future": r.json()["request_id"],
    }


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "tml-wrong"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Bearer tml-nope"},
    ],
)
def test_missing_or_wrong_key_is_401(env: dict[str, Any], headers: dict[str, str]) -> None:
    c = env["client"]
    for method, path, body in [
        ("post", "/create_session", {"tags": [], "sdk_version": "x"}),
        ("post", "/client/config", {"sdk_version": "x"}),
        ("post", "/retrieve_future", {"request_id": "x"}),
        ("post", "/telemetry", {"events": []}),
        ("get", "/healthz", None),
        ("get", "/training_runs/x/checkpoints", None),
    ]:
        r = c.request(method, API + path, json=body, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert set(r.json()) == {"error", "category"}


def test_revoked_key_is_401_at_once(env: dict[str, Any]) -> None:
    assert post(env, "/create_session", {"sdk_version": "x"}, env["a"]).status_code == 200
    time.sleep(0.01)  # a distinct mtime for the keys file
    keys.revoke(env["home"] / "serve", env["a_id"])
    assert post(env, "/create_session", {"sdk_version": "x"}, env["a"]).status_code == 401
    assert post(env, "/create_session", {"sdk_version": "x"}, env["b"]).status_code == 200


def test_keys_are_stored_only_as_hashes(env: dict[str, Any]) -> None:
    text = (env["home"] / "serve" / "keys.json").read_text()
    assert env["a"] not in text and env["b"] not in text
    assert keys.digest(env["a"]) in text


# --------------------------------------------------------------------------- ownership


def test_another_keys_things_are_404(env: dict[str, Any], model: dict[str, Any]) -> None:
    b, mid = env["b"], model["model_id"]
    checks = [
        ("/session_heartbeat", {"session_id": model["session"]}),
        (
            "/create_model",
            {
                "session_id": model["session"],
                "model_seq_id": 5,
                "base_model": "kitchen/tiny",
                "lora_config": {"rank": 2},
            },
        ),
        ("/get_info", {"model_id": mid}),
        ("/optim_step", {"model_id": mid, "seq_id": 3, "adam_params": {"learning_rate": 0.1}}),
        ("/save_weights", {"model_id": mid, "path": "b", "seq_id": 3}),
        (
            "/load_weights",
            {"model_id": mid, "path": model["state"], "optimizer": True, "seq_id": 3},
        ),
        (
            "/create_sampling_session",
            {
                "session_id": model["session"],
                "sampling_session_seq_id": 0,
                "model_path": model["sampler"],
            },
        ),
        ("/retrieve_future", {"request_id": model["future"]}),
    ]
    for path, body in checks:
        r = post(env, path, body, b)
        assert r.status_code == 404, (path, r.text)
    # B's own session cannot reach A's checkpoint either
    sid_b = session(env, b)
    r = post(
        env,
        "/load_weights",
        {"session_id": sid_b, "model_seq_id": 0, "path": model["state"], "optimizer": False},
        b,
    )
    assert r.status_code == 404
    r = post(
        env,
        "/asample",
        {
            "model_path": model["sampler"],
            "prompt": {"chunks": [{"tokens": [1, 2]}]},
            "sampling_params": {"max_tokens": 1},
        },
        b,
    )
    assert r.status_code == 404
    c = env["client"]
    assert c.get(f"{API}/training_runs/{mid}/checkpoints", headers=h(b)).status_code == 404
    assert c.get(f"{API}/training_runs/{mid}/checkpoints", headers=h(env["a"])).status_code == 200


# --------------------------------------------------------------------------- paths


def files_outside(home: Path, owner: str) -> set[Path]:
    mine = home / "serve" / "owners" / owner
    return {
        p
        for p in home.rglob("*")
        if p.is_file()
        and not p.is_relative_to(mine)
        and p.suffix not in (".db", ".db-wal", ".db-shm", ".json", ".log")
        and "kitchen.db" not in p.name
    }


BAD_NAMES = [
    "..",
    "../x",
    "a/b",
    "/etc/passwd",
    "a/../../b",
    ".hidden",
    "x" * 300,
    "a\\b",
    "..%2f..",
    "\u00e9",
    "",
]


def test_path_traversal_is_refused(env: dict[str, Any], model: dict[str, Any]) -> None:
    a, mid, sid = env["a"], model["model_id"], model["session"]
    before = files_outside(env["home"], env["a_id"])
    seq = 3
    for name in BAD_NAMES:
        for path in ("/save_weights", "/save_weights_for_sampler", "/save_weights_external"):
            r = post(env, path, {"model_id": mid, "path": name, "seq_id": seq}, a)
            assert r.status_code == 400, (path, name, r.text)
    bad_paths = [
        f"tinker://{mid}/weights/../../../x",
        f"tinker://{mid}/weights/..",
        "tinker://../../etc/weights/x",
        f"tinker://{mid}/../weights/s1",
        "/etc/passwd",
        f"tinker://{mid}/weights/s1/../../x",
        "file:///etc/passwd",
        f"tinker://{mid}/secret/s1",
    ]
    for p in bad_paths:
        r = post(
            env, "/load_weights", {"model_id": mid, "path": p, "optimizer": True, "seq_id": seq}, a
        )
        assert r.status_code in (400, 404), (p, r.text)
        r = post(
            env,
            "/create_sampling_session",
            {"session_id": sid, "sampling_session_seq_id": 1, "model_path": p},
            a,
        )
        assert r.status_code in (400, 404), (p, r.text)
        r = post(
            env,
            "/asample",
            {
                "model_path": p,
                "prompt": {"chunks": [{"tokens": [1]}]},
                "sampling_params": {"max_tokens": 1},
            },
            a,
        )
        assert r.status_code in (400, 404), (p, r.text)
    c = env["client"]
    for url in [
        f"{API}/training_runs/{mid}/checkpoints/external_weights/..%2F..%2Fx/external_weights_urls",
        f"{API}/training_runs/{mid}/checkpoints/weights/s1/external_weights_urls",
        f"{API}/files/{mid}/..%2F..%2Fweights/state.json?expires=9999999999&sig={'0' * 64}",
        f"{API}/files/{mid}/s1/..%2Fstate.json?expires=9999999999&sig={'0' * 64}",
    ]:
        r = c.get(url, headers=h(a))
        assert r.status_code in (400, 404), (url, r.text)
    assert (
        post(
            env,
            "/create_model",
            {
                "session_id": sid,
                "model_seq_id": 9,
                "base_model": "/etc",
                "lora_config": {"rank": 1},
            },
            a,
        ).status_code
        == 400
    )
    assert files_outside(env["home"], env["a_id"]) == before


# --------------------------------------------------------------------------- limits


def test_oversized_body_is_413(env: dict[str, Any]) -> None:
    c = env["client"]
    big = {"tags": ["x" * 100] * 100, "sdk_version": "x" * 70_000}
    r = c.post(f"{API}/create_session", content=json.dumps(big), headers=h(env["a"]))
    assert r.status_code == 413
    assert set(r.json()) == {"error", "category"}
    r = c.post(
        f"{API}/forward_backward",
        content=b"\0" * 70_000,
        headers={**h(env["a"]), "content-type": "application/x-protobuf"},
    )
    assert r.status_code == 413


def test_unknown_endpoint_answers_in_the_sdk_error_shape(env: dict[str, Any]) -> None:
    r = post(env, "/retrieve_futures", {}, env["a"])
    assert r.status_code == 404 and "not implemented" in r.json()["error"]
    r = env["client"].post(f"{API}/no_such_thing", json={}, headers=h(env["a"]))
    assert r.status_code == 404 and set(r.json()) == {"error", "category"}


def test_keys_never_reach_the_log(env: dict[str, Any], model: dict[str, Any]) -> None:
    db = (env["home"] / "kitchen.db").read_bytes()
    for key in (env["a"], env["b"]):
        assert key.encode() not in db
        for p in env["home"].rglob("*"):
            if p.is_file():
                assert key.encode() not in p.read_bytes(), p


def test_the_owner_loads_its_state_with_and_without_optimizer(
    env: dict[str, Any], model: dict[str, Any]
) -> None:
    a, mid = env["a"], model["model_id"]
    for seq, optimizer in ((3, False), (4, True)):
        r = post(
            env,
            "/load_weights",
            {"model_id": mid, "path": model["state"], "optimizer": optimizer, "seq_id": seq},
            a,
        )
        assert r.status_code == 200, r.text
        done = result(env, r.json()["request_id"], a).json()
        assert done == {"path": model["state"], "model_id": mid, "type": "load_weights"}
    sid = session(env, a)
    r = post(
        env,
        "/load_weights",
        {"session_id": sid, "model_seq_id": 0, "path": model["state"], "optimizer": False},
        a,
    )
    assert r.status_code == 200, r.text
    created = result(env, r.json()["request_id"], a).json()
    assert created["model_id"] == f"{sid}:train:0"
