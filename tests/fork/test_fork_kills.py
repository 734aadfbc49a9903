"""A fork killed at each of its moments, and carried on, ends with the bytes of an
uninterrupted fork (with no override: the parent's): killed while re-executing the parent's
steps or after copying the state (nothing on record: the same `kitchen fork` again), in its
first attempt, and in a resumed one (`kitchen resume`). Each point is armed once, in one
process of the chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import adapter_sha, created_payload, events_of

pytestmark = pytest.mark.slow

CONFIG = [
    "max_steps=8",
    "save_every=4",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
]
KILLED = -9
FORK = ("fork", "p@6", "--run-id", "k")
CHAIN = (
    (FORK, "stage:optim_step:before@1"),  # re-executing step 4 of the parent
    (FORK, "fork:after_state"),  # the state copied into k/, nothing on record yet
    (FORK, "stage:optim_step:before@4"),  # the fork's own step 7 (steps 4, 5 re-executed)
    (("resume", "k"), "checkpoint:after_blob"),  # its final checkpoint's blob, not recorded
)


def test_a_killed_fork_carries_on_to_the_bytes_of_an_uninterrupted_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    assert kitchen("run", "sl_basic", *CONFIG, "--run-id", "p").code == 0
    for i, (args, point) in enumerate(CHAIN):
        r = kitchen(*args, extra_env={"KITCHEN_FAULT": point})
        assert r.code == KILLED, f"{point} (process {i + 1}) did not fire: {r.stderr[-800:]}"
        if i < 2:  # killed before the fork's first events: it does not exist yet
            assert not (home / "kitchen.db").exists() or not events_of(home, "k")
    last = kitchen("resume", "k")
    assert last.code == 0, last.stderr
    # an uninterrupted fork without overrides ends with the parent's bytes (test_fork_*.py)
    assert adapter_sha(home, "k") == adapter_sha(home, "p")
    fork = created_payload(home, "k")["payload"]["fork"]
    assert (fork["step"], fork["from_step"], fork["reexecuted"]) == (6, 4, 2)
    assert kitchen("replay", "k", "--verify").code == 0
