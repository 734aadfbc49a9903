"""Logs and run folders written by kitchen v1 keep replaying and resuming.

``tests/fixtures/v1`` is a complete KITCHEN_HOME (SQLite event log, checkpoint blobs, final
adapters) written through the CLI by commit 2a44fe7, before the engine's event schema changed
(see its README.md). Every expected value below was read once from that fixture and written here
by hand: nothing is recomputed with the code under test, so a change that reads old events
differently fails here instead of silently rewriting history.

Each test works on a copy of the fixture in tmp_path; the committed folder is never written.
All assertions read the state through ``_state``: if a later version renames a key of the
state JSON, adapt the one line in ``_state`` that reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Result, make_kitchen
from kitchen.testing.compare import largest_weight_difference

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1"
RUNS = ("v1-completed", "v1-crashed", "v1-resumed")

# ---------------------------------------------------------------- values written by hand
# (read from the fixture with `kitchen replay RUN --json` and pasted; never computed)

COMPLETED_ADAPTER_SHA256 = "7e0f326c3d3e888edccac0d9a0bdff1cdfbf5780ae99864b6466a42018266a73"
"""sha256 of v1-completed/final/adapter_model.safetensors (v1-resumed's is the same file)."""

TRAIN_MEAN_NLL = {
    0: 2.6935372488839286,
    1: 3.21648431593372,
    2: 2.642454708323759,
    3: 1.2709017594655354,
    4: 2.1385625203450522,
    5: 1.3197259267171224,
}
EVAL_START = {"test/accuracy": 0.25, "test/examples": 4, "test/nll": 3.6230560910885856}
EVAL_END = {"test/accuracy": 0.25, "test/examples": 4, "test/nll": 1.9020763353585508}

CKPT_2 = "19ed4821e5bdfe71de3ffd6bb9b3435e7ca0abaf2373f322b6b126d2f3a11a4b"
CKPT_4 = "538d188d0a2480d264d92a9241172340c3c5f38a66f47990b86e9110360079eb"
CKPT_6 = "b5d7dc73b953b970241516ca9e1a54242c84bceffb397c829793b5fbb57951ff"
# v1-resumed's later checkpoints hold the same weights, optimizer and RNG tensors as
# v1-completed's; only the Python RNG position recorded in state.json differs.
RESUMED_CKPT_4 = "e4d611d3cadd6081fd53cbd461826d9227c0feadea84ec1930ccd3cc2211e8fd"
RESUMED_CKPT_6 = "32d90a434e44825e35a4e2b7ecef197eea9af5d1ddb68111b549ab665b2bb6f2"

EXPECTED: dict[str, dict[str, Any]] = {
    "v1-completed": {
        "status": "completed",
        "shown_status": "completed",
        "step": 6,
        "optim_steps": [0, 1, 2, 3, 4, 5],
        # (seq, name, step, sha256, status)
        "checkpoints": [
            (37, "step-000002", 2, CKPT_2, "deleted"),
            (60, "step-000004", 4, CKPT_4, "live"),
            (85, "step-000006", 6, CKPT_6, "live"),
        ],
        # per attempt: (seq, name, step) of the checkpoint it resumed from, None for a fresh start
        "resumed_from": [None],
        "train_mean_nll": TRAIN_MEAN_NLL,
        "evals": {0: EVAL_START, 6: EVAL_END},
        "final_eval": {"test/accuracy": 0.25, "test/examples": 4.0, "test/nll": 1.9020763353585508},
        "adapter_uri": "v1-completed/final",
    },
    "v1-crashed": {
        # SIGKILLed before logging steps 4 and 5: the log still says running, and with no
        # live lease the CLI shows it as crashed
        "status": "running",
        "shown_status": "crashed",
        "step": 4,
        "optim_steps": [0, 1, 2, 3, 4],
        "checkpoints": [
            (37, "step-000002", 2, CKPT_2, "live"),
            (60, "step-000004", 4, CKPT_4, "live"),
        ],
        "resumed_from": [None],
        "train_mean_nll": {s: TRAIN_MEAN_NLL[s] for s in (0, 1, 2, 3)},
        "evals": {0: EVAL_START},
        "final_eval": {},
        "adapter_uri": None,
    },
    "v1-resumed": {
        # SIGKILLed in step 3, then resumed from step-000002 to the end
        "status": "completed",
        "shown_status": "completed",
        "step": 6,
        "optim_steps": [0, 1, 2, 3, 4, 5],
        "checkpoints": [
            (37, "step-000002", 2, CKPT_2, "deleted"),
            (80, "step-000004", 4, RESUMED_CKPT_4, "live"),
            (105, "step-000006", 6, RESUMED_CKPT_6, "live"),
        ],
        "resumed_from": [None, (37, "step-000002", 2)],
        "train_mean_nll": TRAIN_MEAN_NLL,
        "evals": {0: EVAL_START, 6: EVAL_END},
        "final_eval": {"test/accuracy": 0.25, "test/examples": 4.0, "test/nll": 1.9020763353585508},
        "adapter_uri": "v1-resumed/final",
    },
}

# v1-crashed after `kitchen resume`: on from step-000004, to the same end as v1-completed
CRASHED_RESUMED_CHECKPOINTS = [  # (name, step, status)
    ("step-000002", 2, "deleted"),
    ("step-000004", 4, "live"),
    ("step-000006", 6, "live"),  # written by the code under test: its sha256 is not pinned
]

METRIC_TOLERANCE = 1e-9

FIXTURE_CPU_VENDOR = "AuthenticAMD"
FIXTURE_CPU_FLAG = "avx512f"
"""The fixture was written on an AMD EPYC, and resumed bit-exactly on AMD EPYCs with AVX-512.
Training that a resume recomputes (steps 4 and 5 of v1-crashed) is bit-exact only on a CPU
whose float kernels are the same: where torch picks other SIMD kernels the sums round
differently (about 4e-7 on an Intel Xeon; 1.3e-7 on an AMD EPYC without AVX-512, where torch
uses its AVX2 kernels). There the resumed result is held to float noise instead of to the
fixture's bytes."""

RECOMPUTED_TOLERANCE = 1e-5


def _same_cpu_as_fixture() -> bool:
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    vendor = any(
        line.split(":", 1)[1].strip() == FIXTURE_CPU_VENDOR
        for line in info.splitlines()
        if line.startswith("vendor_id")
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    return vendor and FIXTURE_CPU_FLAG in flags


# ---------------------------------------------------------------- helpers


@pytest.fixture
def v1_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture, set as KITCHEN_HOME; the committed folder stays untouched."""
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home, ignore=shutil.ignore_patterns("README.md", "make.sh"))
    monkeypatch.setenv("KITCHEN_HOME", str(home))
    return home


def _kitchen(*args: str) -> Result:
    """``kitchen ARGS`` on the copy that KITCHEN_HOME names (never on the fixture itself)."""
    home = Path(os.environ["KITCHEN_HOME"]).resolve()
    assert home != FIXTURE and FIXTURE not in home.parents, home
    return make_kitchen(home)(*args)


def _state(run_id: str) -> dict[str, Any]:
    """The fields of ``kitchen replay RUN_ID --json``'s state that these tests pin.

    The one place that knows the state JSON's keys.
    """
    r = _kitchen("replay", run_id, "--json")
    assert r.code == 0, r.stderr
    s = json.loads(r.stdout)["state"]
    by_seq = {c["seq"]: c for c in s["checkpoints"]}
    return {
        "status": s["status"],
        "shown_status": s["displayed_status"],
        "step": s["step"],
        "optim_steps": list(s["optim_steps"]),
        "checkpoints": [
            (c["seq"], c["name"], c["step"], c["sha256"], c["status"]) for c in s["checkpoints"]
        ],
        "resumed_from": [
            None
            if a["resumed_from"] is None
            else (
                a["resumed_from"],
                by_seq[a["resumed_from"]]["name"],
                by_seq[a["resumed_from"]]["step"],
            )
            for a in s["attempts"]
        ],
        "train_mean_nll": {int(k): m["train_mean_nll"] for k, m in s["step_metrics"].items()},
        "evals": {int(k): m for k, m in s["eval_metrics"].items()},
        "final_eval": {k: v for k, v in s["final_metrics"].items() if k.startswith("test/")},
        "adapter_uri": s["adapter_uri"],
    }


def _assert_metrics(
    got: dict[Any, Any], want: dict[Any, Any], tolerance: float = METRIC_TOLERANCE
) -> None:
    assert sorted(got) == sorted(want)
    assert got == pytest.approx(want, abs=tolerance, rel=0)


def _assert_state(got: dict[str, Any], want: dict[str, Any]) -> None:
    metrics = ("train_mean_nll", "evals", "final_eval")
    assert {k: v for k, v in got.items() if k not in metrics} == {
        k: v for k, v in want.items() if k not in metrics
    }
    _assert_metrics(got["train_mean_nll"], want["train_mean_nll"])
    _assert_metrics(got["final_eval"], want["final_eval"])
    assert sorted(got["evals"]) == sorted(want["evals"])
    for step, metrics_at_step in want["evals"].items():
        _assert_metrics(got["evals"][step], metrics_at_step)


def _adapter_sha(home: Path, run_id: str) -> str:
    data = (home / run_id / "final" / "adapter_model.safetensors").read_bytes()
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("run_id", RUNS)
def test_v1_log_verifies(v1_home: Path, run_id: str) -> None:
    r = _kitchen("replay", run_id, "--verify")
    assert r.code == 0, r.stdout[-800:] + r.stderr


@pytest.mark.parametrize("run_id", RUNS)
def test_v1_state_is_what_v1_wrote(v1_home: Path, run_id: str) -> None:
    _assert_state(_state(run_id), EXPECTED[run_id])


def test_v1_runs_are_listed(v1_home: Path) -> None:
    r = _kitchen("runs", "--json")
    assert r.code == 0, r.stderr
    rows = {row["run_id"]: (row["status"], row["step"]) for row in json.loads(r.stdout)}
    assert rows == {
        "v1-completed": ("completed", 6),
        "v1-crashed": ("crashed", 4),
        "v1-resumed": ("completed", 6),
    }


@pytest.mark.slow
def test_v1_crashed_run_resumes_to_the_completed_result(v1_home: Path) -> None:
    r = _kitchen("resume", "v1-crashed")
    assert r.code == 0, r.stderr[-1500:]

    got = _state("v1-crashed")
    assert got["status"] == "completed"
    assert got["shown_status"] == "completed"
    assert got["step"] == 6
    assert got["optim_steps"] == [0, 1, 2, 3, 4, 5]
    # from its newest checkpoint, step-000004, not from the older step-000002
    assert got["resumed_from"] == [None, (60, "step-000004", 4)]
    assert [c[1:3] + c[4:] for c in got["checkpoints"]] == CRASHED_RESUMED_CHECKPOINTS
    assert got["checkpoints"][:2] == [
        (37, "step-000002", 2, CKPT_2, "deleted"),
        (60, "step-000004", 4, CKPT_4, "live"),
    ]
    assert got["adapter_uri"] == "v1-crashed/final"
    if _same_cpu_as_fixture():
        _assert_metrics(got["train_mean_nll"], TRAIN_MEAN_NLL)
        _assert_metrics(got["evals"][6], EVAL_END)
        assert _adapter_sha(v1_home, "v1-crashed") == COMPLETED_ADAPTER_SHA256
        assert _adapter_sha(v1_home, "v1-crashed") == _adapter_sha(v1_home, "v1-completed")
    else:
        # steps 0-3 come from the log as v1 wrote it, exactly; 4 and 5 were trained here
        before = {k: v for k, v in got["train_mean_nll"].items() if k < 4}
        _assert_metrics(before, {k: v for k, v in TRAIN_MEAN_NLL.items() if k < 4})
        _assert_metrics(got["train_mean_nll"], TRAIN_MEAN_NLL, RECOMPUTED_TOLERANCE)
        _assert_metrics(got["evals"][6], EVAL_END, RECOMPUTED_TOLERANCE)
        final = v1_home / "v1-crashed" / "final"
        reference = v1_home / "v1-completed" / "final"
        assert largest_weight_difference(final, reference) <= RECOMPUTED_TOLERANCE

    verify = _kitchen("replay", "v1-crashed", "--verify")
    assert verify.code == 0, verify.stdout[-800:] + verify.stderr


def test_v1_resumed_run_is_complete_with_the_completed_result(v1_home: Path) -> None:
    got = _state("v1-resumed")
    assert got["status"] == "completed"
    assert got["resumed_from"] == [None, (37, "step-000002", 2)]
    assert got["optim_steps"] == [0, 1, 2, 3, 4, 5]
    assert _adapter_sha(v1_home, "v1-resumed") == COMPLETED_ADAPTER_SHA256
    assert _adapter_sha(v1_home, "v1-resumed") == _adapter_sha(v1_home, "v1-completed")
    assert _adapter_sha(v1_home, "v1-completed") == COMPLETED_ADAPTER_SHA256

    # a completed run has nothing to resume: refused (exit 2), adapter untouched
    r = _kitchen("resume", "v1-resumed")
    assert r.code == 2, (r.code, r.stderr[-800:])
    assert _adapter_sha(v1_home, "v1-resumed") == COMPLETED_ADAPTER_SHA256
    assert _state("v1-resumed")["step"] == 6


NEWER_DEFAULTS = '''
"""A later kitchen whose sl_basic has other defaults, including a key v1 never recorded."""
import dataclasses

from kitchen import config as kconfig
import kitchen.recipes.sl_basic as recipe


class Config(recipe.Config):
    learning_rate: float = 0.05
    lora_rank: int = 4
    pipeline: bool = kconfig.operating(False)
    load_checkpoint_path: str | None = kconfig.added("run:no-such-run", absent=None)


recipe.RECIPE = dataclasses.replace(recipe.RECIPE, config=Config)
'''


@pytest.mark.slow
def test_v1_crashed_run_resumes_the_same_after_defaults_change(
    v1_home: Path, tmp_path: Path
) -> None:
    """Changing a default never changes a recorded run: keys v1 recorded keep their recorded
    values, and a key added since takes the value that reproduces what v1 did."""
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "sitecustomize.py").write_text(NEWER_DEFAULTS, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(newer), os.environ.get("PYTHONPATH", "")) if p)
    home = Path(os.environ["KITCHEN_HOME"]).resolve()
    r = make_kitchen(home)("resume", "v1-crashed", extra_env={"PYTHONPATH": path})
    assert r.code == 0, r.stderr[-1500:]

    got = _state("v1-crashed")
    assert (got["status"], got["step"]) == ("completed", 6)
    assert got["resumed_from"] == [None, (60, "step-000004", 4)]
    if _same_cpu_as_fixture():
        assert _adapter_sha(v1_home, "v1-crashed") == COMPLETED_ADAPTER_SHA256
    else:
        final = v1_home / "v1-crashed" / "final"
        reference = v1_home / "v1-completed" / "final"
        assert largest_weight_difference(final, reference) <= RECOMPUTED_TOLERANCE
