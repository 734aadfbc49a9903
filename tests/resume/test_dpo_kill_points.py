"""dpo_basic killed at its dangerous moments and resumed: bit-identical, one reference.

The preference workflow adds two fault points to the engine's: ``reference:mid`` (during the
reference computation) and ``reference:after_blob`` (the blob written, its record not yet).
They are chained in one run with the moments around the reference's record (each process
imports torch and opens the model, so a kill per run would cost a run per point): the run is
killed at the first point, each resume at the next, and the last resume completes. Kills the
engine's own points would repeat (mid-step, mid-checkpoint, the final save) are left to the
sl_basic chains in test_kill_points.py. The final adapter equals an uninterrupted run's byte for
byte, the effective history holds exactly one reference record, and once a reference is on
record no resume computes it again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen
from kitchen.testing.dpo import (
    STEPS,
    effective_references,
    reference_computations,
    small_dpo_config,
    write_pairs,
)
from kitchen.testing.runs import adapter_sha, card_as, kill_chain, replay_json

KILLED = -9

# The points in the order they are armed: the run, then each resume. [from → to]: the step
# the process starts from → the one the next resume starts from (6 steps, checkpoints after
# steps 2 and 4).
CHAIN = (
    "reference:mid@1",  # the reference half computed, nothing written [0 → 0]
    "reference:after_blob",  # computed again, its blob written, no record [0 → 0]
    "stage:compute_reference_logprobs:after",  # the record made, not committed [0 → 0]
    # the reference on record, no checkpoint yet: a resume from the start reads it back [0 → 0]
    "stage:get_batch:after@1",
    # step 2: a resume from a checkpoint reads the reference back too [0 → 2]
    "stage:forward_backward:after@3",
)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, pairs: Path) -> Path:
    """The KITCHEN_HOME of an uninterrupted run, run id ``ref``."""
    home = tmp_path_factory.mktemp("dpo-reference")
    r = make_kitchen(home)("run", "dpo_basic", *small_dpo_config(pairs), "--run-id", "ref")
    assert r.code == 0, r.stderr
    return home


def resume_until_done(kitchen: Kitchen, run_id: str) -> None:
    for _ in range(3):
        r = kitchen("resume", run_id)
        if r.code == 0:
            return
    raise AssertionError(f"{run_id} did not complete: {r.code} {r.stderr[-800:]}")


def check_one_reference(kitchen: Kitchen, run_id: str, recomputed_after_failure: bool) -> None:
    doc = replay_json(kitchen, run_id)
    assert doc["state"]["status"] == "completed"
    assert doc["state"]["optim_steps"] == list(range(STEPS))
    assert len(effective_references(doc)) == 1
    done = reference_computations(doc)
    first_on_record = next(i for i, (_, computed) in enumerate(done) if computed)
    later = [computed for _, computed in done[first_on_record + 1 :]]
    assert later.count(True) == (1 if recomputed_after_failure else 0), done


@pytest.mark.slow
@pytest.mark.parametrize("points", [CHAIN], ids=["+".join(CHAIN)])
def test_dpo_kill_points(
    tmp_path: Path, pairs: Path, uninterrupted: Path, points: tuple[str, ...]
) -> None:
    kitchen = make_kitchen(tmp_path / "home")
    kill_chain(kitchen, ("dpo_basic", *small_dpo_config(pairs)), "kill-chain", points)
    assert adapter_sha(tmp_path / "home", "kill-chain") == adapter_sha(uninterrupted, "ref")
    assert card_as(tmp_path / "home", "kill-chain", "ref") == card_as(uninterrupted, "ref", "ref")
    check_one_reference(kitchen, "kill-chain", recomputed_after_failure=False)
    verify = kitchen("replay", "kill-chain", "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr


@pytest.mark.slow
def test_a_corrupt_reference_is_recomputed_from_the_starting_weights(
    tmp_path: Path, pairs: Path, uninterrupted: Path
) -> None:
    """Killed after the step-4 checkpoint, the reference blob damaged: the resume recomputes it
    from the weights the run started with (not the resumed ones) and says so in the log."""
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    config = small_dpo_config(pairs)
    env = {"KITCHEN_FAULT": "stage:save_checkpoint:after@2"}
    r = kitchen("run", "dpo_basic", *config, "--run-id", "corrupt", extra_env=env)
    assert r.code == KILLED, r.stderr[-800:]
    blob = home / "corrupt" / "artifacts" / "reference_logprobs" / "logprobs.safetensors"
    original = blob.read_bytes()
    blob.write_bytes(original[:-4] + b"\0\0\0\0")
    resume_until_done(kitchen, "corrupt")
    assert blob.read_bytes() == original  # the same starting weights give the same reference
    assert adapter_sha(home, "corrupt") == adapter_sha(uninterrupted, "ref")
    check_one_reference(kitchen, "corrupt", recomputed_after_failure=True)
    doc = replay_json(kitchen, "corrupt")
    deleted = [e for e in doc["events"] if e["type"] == "ArtifactDeleted"]
    assert [e["payload"]["kind"] for e in deleted] == ["reference_logprobs"]
