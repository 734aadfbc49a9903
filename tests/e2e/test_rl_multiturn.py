"""`kitchen run rl_multiturn` end to end through the real CLI: multi-turn episodes on record
with their observation tokens masked, and a judge model's rewards recorded as environment
results that a resumed run reads back instead of asking the judge again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen
from kitchen.testing.runs import replay_json
from kitchen.workflows.rl import codec

SMALL = [
    "max_steps=2",
    "save_every=0",
    "group_size=2",
    "groups_per_batch=2",
    "max_tokens=4",
    "eval_examples=2",
    "eval_max_tokens=4",
]


@pytest.mark.slow
def test_feedback_episodes_take_several_turns(kitchen: Kitchen, home: Path) -> None:
    small = [x for x in SMALL if not x.startswith(("save_every", "groups_per_batch"))]
    more = ("save_every=1", "groups_per_batch=4", "max_turns=3")
    r = kitchen("run", "rl_multiturn", *small, *more, "--run-id", "mt")
    assert r.code == 0, r.stderr
    turns: list[int] = []
    # retention keeps the rollouts of the steps after the oldest kept checkpoint (step 1)
    blob = home / "mt" / "artifacts" / "rollouts" / "step-000001.json"
    for _, groups in [codec.decode(blob.read_bytes())]:
        for g in groups:
            for tr in g.trajectories:
                turns.append(len(tr.transitions))
                for before, after in zip(tr.transitions, tr.transitions[1:], strict=False):
                    # the next turn sees the conversation so far: observation, reply, feedback
                    prefix = before.ob.to_ints() + list(before.tokens)
                    assert after.ob.to_ints()[: len(prefix)] == prefix
                    assert after.ob.length > len(prefix)  # the env's feedback message
    assert max(turns) > 1 and max(turns) <= 3, turns
    state = replay_json(kitchen, "mt")["state"]
    assert state["status"] == "completed"
    assert state["step_metrics"]["1"]["env/all/total_turns"] == sum(turns)


@pytest.mark.slow
def test_judge_verdicts_are_recorded_and_never_asked_twice(kitchen: Kitchen, home: Path) -> None:
    run = ("rl_multiturn", "env=judged", "judge_model=kitchen/tiny", *SMALL)
    # killed in step 1 after its first group's verdicts are on record
    killed = kitchen(
        "run", *run, "--run-id", "judged", extra_env={"KITCHEN_FAULT": "rollouts:mid_sampling@2"}
    )
    assert killed.code == -9, killed.stderr[-800:]
    resumed = kitchen("resume", "judged")
    assert resumed.code == 0, resumed.stderr[-800:]

    doc = replay_json(kitchen, "judged")
    created = next(e["payload"] for e in doc["events"] if e["type"] == "RunCreated")
    assert [(x["role"], x["source"]) for x in created["lineage"]] == [("judge", "kitchen/tiny")]
    done = [e["payload"] for e in doc["events"] if e["type"] == "ActivityCompleted"]
    keys = Counter(p["key"] for p in done)
    # 2 steps x 2 groups x 2 envs, one turn each: each verdict asked and recorded once, the
    # killed step's first group read back on resume
    assert sorted(keys) == sorted(
        f"rl/step-{s}/group-{g}/env-{e}/turn-0"
        for s in range(2)
        for g in range(2)
        for e in range(2)
    )
    assert set(keys.values()) == {1}
    assert all(isinstance(p["result"]["effect"]["judge_verdict"], str) for p in done)
    assert {p["attempt"] for p in done} == {1, 2}
    for p in done:  # the reward is the verdict's score plus the format term
        score = 1.0 if p["result"]["effect"]["judge_verdict"].lower().startswith("yes") else 0.0
        fmt = p["result"]["metrics"]["format"]
        assert p["result"]["reward"] == pytest.approx(0.1 * (fmt - 1.0) + score)
        assert p["result"]["metrics"]["judge"] == score
    verify = kitchen("replay", "judged", "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr
    assert json.loads(json.dumps(doc["state"]["status"])) == "completed"
