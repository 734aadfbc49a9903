"""kitchen fork on sl_basic: from a checkpoint, between checkpoints, a fork of a fork, a new
learning rate from the fork point on, and bad input refused in one line with nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen, one_line_error
from kitchen.testing.runs import adapter_sha, created_payload, events_of, step_metrics

pytestmark = pytest.mark.slow

CONFIG = [
    "max_steps=8",
    "save_every=4",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
]
"""8 steps, a checkpoint at step 4 and the final one at 8: steps 5-7 have none."""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("fork-sl")
    r = make_kitchen(home)("run", "sl_basic", *CONFIG, "--run-id", "p")
    assert r.code == 0, r.stderr
    return home


@pytest.fixture(scope="module")
def kitchen(home: Path) -> Kitchen:
    return make_kitchen(home)


def test_forks_with_no_override_end_with_the_parents_adapter(home: Path, kitchen: Kitchen) -> None:
    parent_seqs = len(events_of(home, "p"))
    at_checkpoint = kitchen("fork", "p@4", "--run-id", "f4")
    assert at_checkpoint.code == 0, at_checkpoint.stderr
    assert at_checkpoint.stdout.splitlines()[0] == "f4"
    between = kitchen("fork", "p@step-000006", "--run-id", "f6")
    assert between.code == 0, between.stderr
    of_fork = kitchen("fork", "f6@7", "--run-id", "f6-7")  # a fork of a fork, re-executed
    assert of_fork.code == 0, of_fork.stderr
    want = adapter_sha(home, "p")
    assert [adapter_sha(home, r) for r in ("f4", "f6", "f6-7")] == [want, want, want]

    f4 = created_payload(home, "f4")
    assert f4["schema_version"] == 4
    fork = f4["payload"]["fork"]
    assert (fork["run_id"], fork["step"], fork["checkpoint"], fork["from_step"]) == (
        "p",
        4,
        "step-000004",
        4,
    )
    assert (fork["reexecuted"], fork["mismatches"], fork["overrides"]) == (0, [], {})
    f6 = created_payload(home, "f6")["payload"]["fork"]
    assert (f6["step"], f6["checkpoint"], f6["from_step"], f6["reexecuted"]) == (6, None, 4, 2)
    assert f6["mismatches"] == [] and f6["forced"] is False
    assert any(
        line.startswith("   └─ f6-7 ") for line in kitchen("runs", "--tree").stdout.splitlines()
    )

    # the state is the fork's own first checkpoint, in its own folder, hashed as recorded
    events = events_of(home, "f6")
    assert [e["type"] for e in events[:4]] == [
        "RunCreated",
        "CheckpointSaved",
        "AttemptStarted",
        "RunResumed",
    ]
    saved = events[1]["payload"]
    assert (saved["uri"], saved["step"], saved["sha256"]) == (
        "f6/checkpoints/step-000006",
        6,
        f6["sha256"],
    )
    assert (home / "f6" / "checkpoints" / "step-000006" / "state").is_dir()
    # the fork trains steps 6 and 7 exactly as the parent did, and the parent is untouched
    parent, child = step_metrics(home, "p"), step_metrics(home, "f6")
    assert sorted(child) == [6, 7]
    assert [child[s]["train_mean_nll"] for s in (6, 7)] == [
        parent[s]["train_mean_nll"] for s in (6, 7)
    ]
    assert len(events_of(home, "p")) == parent_seqs
    shown = kitchen("show", "f6-7")
    assert "forked from f6 at step 7, re-executed from step 6 (1 steps)" in shown.stdout


def test_a_new_learning_rate_changes_the_steps_after_the_fork_point(
    home: Path, kitchen: Kitchen
) -> None:
    r = kitchen("fork", "p@6", "learning_rate=0.001", "--run-id", "lr")
    assert r.code == 0, r.stderr
    assert created_payload(home, "lr")["payload"]["fork"]["overrides"] == {"learning_rate": 0.001}
    parent, child = step_metrics(home, "p"), step_metrics(home, "lr")
    # step 6's loss is measured on the state at the fork point: the parent's to the bit
    assert child[6]["train_mean_nll"] == parent[6]["train_mean_nll"]
    # its update uses the new rate on the parent's linear schedule over 8 steps
    assert child[6]["learning_rate"] == pytest.approx(0.001 * (1 - 6 / 8))
    assert parent[6]["learning_rate"] == pytest.approx(0.003 * (1 - 6 / 8))
    assert child[7]["train_mean_nll"] != parent[7]["train_mean_nll"]
    assert adapter_sha(home, "lr") != adapter_sha(home, "p")
    shown = kitchen("show", "lr").stdout
    assert "forked from p at step 6, re-executed from step 4 (2 steps)" in shown
    assert "fork overrides: learning_rate=0.001" in shown

    diff = kitchen("diff", "p", "lr").stdout.splitlines()
    assert diff[0] == (
        "lr forks from p at step 6: the two are one run up to it; changed from there: "
        "learning_rate=0.0010"
    )
    assert any(
        line.startswith("metrics (final; min and max from the branch point") for line in diff
    )
    plot = kitchen("plot", "p", "lr", "--metric", "train_mean_nll").stdout
    assert plot.rstrip().endswith("| lr forks from p at step 6")
    tree = kitchen("runs", "--tree").stdout.splitlines()
    assert tree[1].startswith("p ")  # the parent heads the family; its forks are under it
    assert any(line.startswith("└─ lr ") for line in tree[2:]), tree
    out = home / "lr.jsonl"
    assert kitchen("export", "lr", "--out", str(out)).code == 0
    assert kitchen("verify", str(out)).code == 0


def _runs(home: Path) -> list[tuple[str, int]]:
    from kitchen.store import open_store

    with open_store(f"sqlite:///{home / 'kitchen.db'}", migrate=False) as store:
        return [(r.run_id, r.last_seq) for r in store.list_runs()]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope@4"], "no run 'nope'"),
        (["p@9"], "run 'p' has applied 8 optimizer steps; fork it at a step from 1 to 8"),
        (["p@0"], "step 0 is the run's start"),
        (["p@four"], "'four' is not a step"),
        (["p@4", "lora_rank=4"], "'lora_rank' cannot change at a fork; a fork of a supervised"),
        (["p@4", "max_steps=3"], "max_steps=3 ends before the fork point"),
        (["p@4", "--run-id", "p"], "run 'p' already exists"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    home: Path, kitchen: Kitchen, args: list[str], says: str
) -> None:
    before = sorted(p.name for p in home.iterdir())
    runs = _runs(home)
    line = one_line_error(kitchen("fork", *args))
    assert says in line, line
    assert sorted(p.name for p in home.iterdir()) == before
    assert _runs(home) == runs


def test_a_served_model_is_not_forked(home: Path, kitchen: Kitchen) -> None:
    from kitchen.log_records import NewEvent
    from kitchen.store import open_store

    created = {
        "recipe": "served",
        "workflow": "served",
        "config": {},
        "config_hash": "0" * 64,
        "seed": 0,
        "versions": {},
        "run_dir": "served-1",
    }
    with open_store(f"sqlite:///{home / 'kitchen.db'}") as store:  # as kitchen serve records one
        store.append("served-1", [NewEvent("RunCreated", created, 3)], 0)
    line = one_line_error(kitchen("fork", "served-1@1"))
    assert "is a model served by `kitchen serve`" in line


def test_a_reexecuted_step_that_differs_is_refused_unless_forced(
    home: Path, kitchen: Kitchen
) -> None:
    before = sorted(p.name for p in home.iterdir())
    perturbed = {"KITCHEN_PERTURB_STEP": "5"}  # step 5's re-executed loss comes out changed
    line = one_line_error(kitchen("fork", "p@6", "--run-id", "bad", extra_env=perturbed))
    assert "re-executing the run's steps did not reproduce its log (step 5: train_mean_nll" in line
    assert "fork with --force" in line
    assert sorted(p.name for p in home.iterdir()) == before
    forced = kitchen("fork", "p@6", "--run-id", "forced", "--force", extra_env=perturbed)
    assert forced.code == 0, forced.stderr
    fork = created_payload(home, "forced")["payload"]["fork"]
    assert fork["forced"] is True and fork["mismatches"][0].startswith("step 5: train_mean_nll")
