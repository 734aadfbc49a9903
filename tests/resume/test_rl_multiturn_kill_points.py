"""SIGKILL a reduced multi-turn run whose env steps must happen exactly once, resume until done.

The env (``kitchen.testing.counting_env``) appends a line to a file outside the run for every
step it executes and another for every call of its unknown-outcome hook. One chain of kills,
each in the next process: after an env call and before its record (the outcome is unknown:
the hook finds the step done), after a step's start is committed and before the call (the
hook finds it not done and does it), while sampling a step, and before an optimizer step.

Every step of every episode must be executed exactly once, with the actions an uninterrupted
run took; the hook called exactly for the two unknown outcomes; the final adapter equal to the
uninterrupted run's byte for byte; ``replay --verify`` passing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.counting_env import FILE_ENV, read_lines
from kitchen.testing.runs import (
    MULTITURN_STEPS,
    SMALL_MULTITURN_CONFIG,
    adapter_sha,
    card_as,
    kill_chain,
    replay_json,
)

POINTS = (
    "rollouts:env_called@3",  # step 0: the third env call made, its record not [0 -> 0]
    "activity:started@4",  # a step's start committed, the env not called yet [0 -> 0]
    "rollouts:mid_sampling@1",  # the first step this process samples, after its first group
    "stage:optim_step:before@2",  # a gradient taken, not applied
)


def _executed(path: Path) -> list[tuple[str, int, tuple[int, ...]]]:
    return [(d["episode"], d["turn"], tuple(d["action"])) for d in read_lines(path)]


@pytest.mark.slow
def test_every_env_step_happens_exactly_once_across_kills(tmp_path: Path) -> None:
    ref_count = tmp_path / "reference-calls.jsonl"
    ref_home = tmp_path / "reference"
    r = make_kitchen(ref_home)(
        "run",
        "rl_multiturn",
        *SMALL_MULTITURN_CONFIG,
        "--run-id",
        "reference",
        extra_env={FILE_ENV: str(ref_count)},
    )
    assert r.code == 0, r.stderr
    reference = _executed(ref_count)
    assert len(reference) > 4 * MULTITURN_STEPS  # some episodes took more than one turn
    assert not (tmp_path / "reference-calls.jsonl.unknown").exists()

    count = tmp_path / "calls.jsonl"
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    kill_chain(
        kitchen,
        ("rl_multiturn", *SMALL_MULTITURN_CONFIG),
        "mt-kill",
        POINTS,
        {FILE_ENV: str(count)},
    )

    executed = _executed(count)
    assert Counter((e, t) for e, t, _ in executed).most_common(1)[0][1] == 1  # never twice
    assert sorted(executed) == sorted(reference)  # every step, with the reference's actions
    unknown = read_lines(Path(str(count) + ".unknown"))
    assert sorted(d["happened"] for d in unknown) == [False, True], unknown
    assert adapter_sha(home, "mt-kill") == adapter_sha(ref_home, "reference")
    assert card_as(home, "mt-kill", "reference") == card_as(ref_home, "reference", "reference")

    doc = replay_json(kitchen, "mt-kill")
    done = [e["payload"] for e in doc["events"] if e["type"] == "ActivityCompleted"]
    keys = Counter(p["key"] for p in done)
    assert len(keys) == len(reference) and set(keys.values()) == {1}  # one result per step
    assert sum(p["recovered"] for p in done) == 2
    state = doc["state"]
    assert state["status"] == "completed"
    assert state["optim_steps"] == list(range(MULTITURN_STEPS))
    assert not state["mismatches"]
    verify = kitchen("replay", "mt-kill", "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr
