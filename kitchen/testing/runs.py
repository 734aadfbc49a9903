"""Helpers for tests that run sl_basic through the CLI and inspect the result."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kitchen.testing.cli import Kitchen, make_kitchen

STEPS = 20
SAVE_EVERY = 5
SMALL_SL_CONFIG = [
    f"max_steps={STEPS}",
    f"save_every={SAVE_EVERY}",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
]
"""A 20-step sl_basic run that takes seconds: the shape the crash tests use."""


def crash_sl(
    home: Path, run_id: str, point: str, *extra: str, env: dict[str, str] | None = None
) -> None:
    """Start a SMALL_SL_CONFIG run that a fault point SIGKILLs (exit -9) at ``point``."""
    r = make_kitchen(home)(
        "run",
        "sl_basic",
        *SMALL_SL_CONFIG,
        *extra,
        "--run-id",
        run_id,
        extra_env={"KITCHEN_FAULT": point, **(env or {})},
    )
    assert r.code == -9, r.stderr[-800:]


def kill_chain(
    kitchen: Kitchen,
    run: Sequence[str],
    run_id: str,
    points: Sequence[str],
    env: dict[str, str] | None = None,
) -> None:
    """``kitchen run *run --run-id run_id`` with ``points[0]`` armed, then one ``kitchen resume``
    with each later point armed, each asserted to have fired (SIGKILL: exit -9), then a last
    resume that must complete (every process gets ``env``). A point's ``@N`` counts in the
    process it is armed in."""
    for i, point in enumerate(points):
        args = ("run", *run, "--run-id", run_id) if i == 0 else ("resume", run_id)
        r = kitchen(*args, extra_env={**(env or {}), "KITCHEN_FAULT": point})
        assert r.code == -9, (
            f"{point} (process {i + 1}) did not fire: exit {r.code}\n{r.stderr[-800:]}"
        )
    r = kitchen("resume", run_id, extra_env=env)
    assert r.code == 0, (
        f"{run_id}: the resume after {points[-1]} failed: {r.code}\n{r.stderr[-800:]}"
    )


def adapter_sha(home: Path, run_id: str) -> str:
    data = (home / run_id / "final" / "adapter_model.safetensors").read_bytes()
    return hashlib.sha256(data).hexdigest()


def card_as(home: Path, run_id: str, as_id: str) -> str:
    """The model card of ``run_id``'s final adapter with its run id replaced by ``as_id``: the
    cards of two runs of one config under different ids compare equal this way."""
    text = (home / run_id / "final" / "README.md").read_text(encoding="utf-8")
    return text.replace(run_id, as_id)


def replay_json(kitchen: Kitchen, run_id: str) -> dict[str, Any]:
    r = kitchen("replay", run_id, "--json")
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout))


RL_STEPS = 6
RL_SAVE_EVERY = 2
SMALL_RL_CONFIG = [
    f"max_steps={RL_STEPS}",
    f"save_every={RL_SAVE_EVERY}",
    "keep_checkpoints=2",
    "eval_every=0",
    "group_size=4",
    "groups_per_batch=4",
    "max_tokens=4",
    "eval_examples=4",
    "eval_max_tokens=4",
]
"""A 6-step rl_basic run that takes seconds: the shape the RL crash tests use. With two
checkpoints kept, retention deletes the rollouts of steps 0-3 by the end."""


MULTITURN_STEPS = 4
SMALL_MULTITURN_CONFIG = [
    "env=kitchen.testing.counting_env:make",
    f"max_steps={MULTITURN_STEPS}",
    "save_every=2",
    "keep_checkpoints=2",
    "group_size=2",
    "groups_per_batch=2",
    "max_tokens=4",
    "max_turns=3",
]
"""A 4-step rl_multiturn run on the counting env (``kitchen.testing.counting_env``: set
``KITCHEN_COUNTING_FILE``) that takes seconds: 4 episodes of up to 3 turns a step."""


ON_POLICY_STEPS = 4
SMALL_ON_POLICY_CONFIG = [
    f"max_steps={ON_POLICY_STEPS}",
    "save_every=2",
    "keep_checkpoints=2",
    "eval_every=0",
    "group_size=2",
    "groups_per_batch=4",
    "max_tokens=4",
    "eval_examples=4",
    "eval_max_tokens=4",
]
"""A 4-step distill_on_policy run that takes seconds (add the teacher)."""

SMALL_OFF_POLICY_CONFIG = [
    "max_steps=6",
    "save_every=2",
    "batch_size=8",
    "max_length=64",
    "max_tokens=8",
    "eval_examples=4",
    "eval_max_tokens=4",
]
"""A 6-step distill_off_policy run that takes seconds (add the teacher)."""


def sampled_steps(doc: dict[str, Any], stage: str = "rollouts") -> dict[int, list[bool]]:
    """Per step, in log order, whether each committed run of the rollouts stage sampled."""
    out: dict[int, list[bool]] = {}
    for e in doc["events"]:
        p = e["payload"]
        if e["type"] == "StageCompleted" and p["stage"] == stage:
            out.setdefault(int(p["step"]), []).append(bool(p["outputs"]["sampled"]))
    return out


def events_of(home: Path, run_id: str) -> list[dict[str, Any]]:
    """A run's events as stored (type, schema_version, payload), read in this process from
    the SQLite log under ``home``: no ``kitchen`` process to start."""
    from kitchen.store import open_store

    with open_store(f"sqlite:///{home / 'kitchen.db'}", migrate=False) as store:
        rows = store.read(run_id)
    return [
        {"seq": r.seq, "type": r.type, "schema_version": r.schema_version, "payload": r.payload}
        for r in rows
    ]


def step_metrics(home: Path, run_id: str) -> dict[int, dict[str, Any]]:
    """The step metrics a run logged, by step (a step logged again after a resume keeps its
    last value)."""
    out: dict[int, dict[str, Any]] = {}
    for e in events_of(home, run_id):
        if e["type"] == "StageCompleted":
            for step, metrics in (e["payload"].get("metrics") or {}).items():
                out[int(step)] = dict(metrics)
    return out


def created_payload(home: Path, run_id: str) -> dict[str, Any]:
    """The run's ``RunCreated`` event (type, schema_version, payload)."""
    first = events_of(home, run_id)[0]
    assert first["type"] == "RunCreated", first
    return first
