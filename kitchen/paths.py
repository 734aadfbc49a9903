"""Where things are: KITCHEN_HOME, the run folder and its layout, the run-id rule.

Every module asks here, so they cannot disagree (an empty ``KITCHEN_HOME`` means the default,
everywhere): checkpoint names, the state sub-folder of a checkpoint, the final weights and
artifact keys are defined here and nowhere else. Keys are resolved to files through the run's
``BlobStore`` (``local_path``), never by joining them to KITCHEN_HOME by hand. Local blob keys
are relative to KITCHEN_HOME, so a home folder can move::

    $KITCHEN_HOME/
      kitchen.db                     the SQLite event log (unless KITCHEN_DB_URL says otherwise)
      <run-id>/                      one folder per run
        config.json  metrics.jsonl
        checkpoints/step-000020/     a checkpoint blob (state/, cursor.json)
        final/                       the final PEFT adapter, with its model card (README.md)
        artifacts/<kind>/<name>      other artifacts (reference log-probs, rollouts …)
"""

from __future__ import annotations

import re
from pathlib import Path

DB_FILE = "kitchen.db"
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RUN_ID_RULE = "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def kitchen_home() -> Path:
    """``KITCHEN_HOME`` (unset or empty: ``./kitchen-runs``), absolute."""
    from kitchen.settings import home

    return home()


def default_db_path() -> Path:
    return kitchen_home() / DB_FILE


def valid_run_id(run_id: object) -> bool:
    """A run id also names a folder: nothing that could climb out of KITCHEN_HOME."""
    return isinstance(run_id, str) and RUN_ID_PATTERN.fullmatch(run_id) is not None


def run_dir(home: Path, run_id: str) -> Path:
    return home / run_id


STATE_DIR = "state"
"""The sub-folder of a checkpoint blob holding the training client's saved state."""


def checkpoint_name(step: int, tag: str = "") -> str:
    """``step-000020`` (optimizer steps contained); ``tag`` tells apart checkpoints of the same
    step written by different attempts of a served model (``step-000020-a2``)."""
    return f"step-{step:06d}" + (f"-{tag}" if tag else "")


def step_file(step: int, suffix: str) -> str:
    """A per-step artifact's file name: ``step-000020.json``."""
    return checkpoint_name(step) + suffix


def state_folder(checkpoint_folder: Path | str) -> Path:
    """Where a local checkpoint's saved state lies inside its blob folder."""
    return Path(checkpoint_folder) / STATE_DIR


def checkpoint_key(run_id: str, name: str) -> str:
    return f"{run_id}/checkpoints/{name}"


CARD_FILE = "README.md"
"""The model card inside a final adapter folder (the Hugging Face hub's name for it)."""


def final_key(run_id: str) -> str:
    return f"{run_id}/final"


def artifact_key(run_id: str, kind: str, name: str) -> str:
    return f"{run_id}/artifacts/{kind}/{name}"
