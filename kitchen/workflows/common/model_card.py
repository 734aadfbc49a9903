"""The model card: the ``README.md`` in the Hugging Face format that every final adapter folder
holds, written from the run's record by ``save_final_weights`` inside the folder's blob.

Its bytes depend only on what the log holds and the adapter files beside it, never on the
clock, the host or the attempt: a resumed run writes the same card as an uninterrupted one,
so the folder's sha256 (and the lineage of runs started from it) does not depend on how the
run got there. What it holds:

- YAML front matter: ``base_model``, ``library_name: peft``, ``pipeline_tag``, ``tags``
  (kitchen, lora, the recipe and the workflow) and ``datasets`` (a dataset given by name);
- the run id, recipe and workflow; lineage (parent or teacher weights with their sha256, and
  the fork point of a forked run); the dataset and the run's data fingerprint;
- the identity config as recorded (operating settings and the adapters that ran it are
  left out: they say how the run executed, not what it learned, and may differ between
  runs that end with the same bytes);
- the last step's headline metrics (the workflow's progress metrics but the clock's) and
  the newest evaluation on record when the folder is written;
- each adapter file's sha256 and size, and the library versions the run recorded.

The end-of-run evaluation runs after the folder is written, so its scores are in the log
(``kitchen show``), not in the card.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kitchen.engine.state import RunState
from kitchen.paths import CARD_FILE

CLOCK = ("time", "per_s", "eta")
"""Metric names holding one of these measure the clock (``step_time_s``, ``tokens_per_s``):
they differ between two runs that compute the same thing, so the card leaves them out."""
FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".arrow", ".txt")
"""A dataset value ending so is a local file, which the front matter does not name."""
LEFT_OUT = ("adapters",)
"""Identity keys the card leaves out: which adapters (local, tinker …) trained the run."""


def render(
    state: RunState,
    config: Mapping[str, Any],
    files: Mapping[str, tuple[str, int]],
    headline: Sequence[str] = (),
) -> str:
    """The card of ``state``'s run. ``config``: the identity config as recorded; ``files``:
    adapter file name → (sha256, bytes); ``headline``: the workflow's progress metrics
    (empty: every metric of the last step but the clock's)."""
    base = str(config.get("model_name") or _parent_source(state) or "")
    dataset = config.get("dataset")
    tags = ["kitchen", "lora", *(t for t in (state.recipe, state.workflow) if t)]
    front = ["---"]
    if base:
        front.append(f"base_model: {_q(base)}")
    front += ["library_name: peft", "pipeline_tag: text-generation", "tags:"]
    front += [f"- {_q(t)}" for t in dict.fromkeys(tags)]
    if _named(dataset):
        front += ["datasets:", f"- {_q(str(dataset))}"]
    front.append("---")
    what = f"recipe `{state.recipe or '-'}`, workflow `{state.workflow or '-'}`"
    lines = [
        *front,
        "",
        f"# {state.run_id}",
        "",
        f"A LoRA adapter{f' for `{base}`' if base else ''}: the final adapter of kitchen run "
        f"`{state.run_id}` ({what}). Everything here is read from the run's event log; "
        f"`kitchen show {state.run_id}` shows the whole record.",
        "",
        *_lineage(state, base),
        *_data(state, dataset),
        *_config(state, config),
        *_metrics(state, headline),
        *_files(files),
        *_versions(state),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def write(
    folder: Path,
    state: RunState,
    config: Mapping[str, Any],
    headline: Sequence[str] = (),
) -> None:
    """Write the card into ``folder``, the adapter files already there (before its blob is
    sealed, so the blob's sha256 covers it)."""
    found = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    files = {rel: _sha256(path) for rel, path in sorted(found.items()) if rel != CARD_FILE}
    shown = {k: v for k, v in config.items() if k not in LEFT_OUT}
    text = render(state, shown, files, headline)
    (folder / CARD_FILE).write_bytes(text.encode("utf-8"))


# --------------------------------------------------------------------------- sections


def _lineage(state: RunState, base: str) -> list[str]:
    rows = []
    if base:
        rows.append(["base model", _code(base), "", ""])
    for ref in state.lineage:
        what = f"run `{ref.run_id}` ({ref.what})" if ref.kind == "run" else ref.kind
        step = "" if ref.step is None else f" at step {ref.step}"
        rows.append([ref.role, _code(ref.source), what + step, _code(ref.sha256 or "")])
    out = ["## Lineage", "", *_table(["role", "source", "kind", "sha256"], rows)]
    if state.fork is not None:
        f = state.fork
        start = (
            f"from its checkpoint {f.checkpoint}"
            if f.checkpoint
            else f"re-executed from step {f.from_step}"
        )
        out += [
            "",
            f"Forked from run `{f.run_id}` at step {f.step}, {start} (state sha256 `{f.sha256}`).",
        ]
        if f.overrides:
            changed = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in sorted(f.overrides.items()))
            out.append(f"The fork changed {changed}.")
    return [*out, ""]


def _data(state: RunState, dataset: Any) -> list[str]:
    out = ["## Data", ""]
    if isinstance(dataset, str) and dataset:
        out.append(f"- dataset: `{dataset}`")
    out.append(f"- data fingerprint (sha256): `{state.data_fingerprint or 'not recorded'}`")
    return [*out, ""]


def _config(state: RunState, config: Mapping[str, Any]) -> list[str]:
    out = [
        "## Training configuration",
        "",
        f"Seed {state.seed}; {state.total_steps or state.step} optimizer steps. The settings "
        "the result depends on, as recorded (operating settings such as the device, and the "
        "adapters that ran the run, are in the log):",
        "",
        "```yaml",
        *(f"{k}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(config.items())),
        "```",
    ]
    return [*out, ""]


def _metrics(state: RunState, headline: Sequence[str]) -> list[str]:
    out = ["## Metrics", ""]
    if state.step_metrics:
        last = max(state.step_metrics)
        metrics = last_step_metrics(state.step_metrics[last], headline)
        out += [f"Last step ({last}, counted from 0):", "", *_metric_table(metrics), ""]
    if state.eval_metrics:
        step = max(state.eval_metrics)
        out += [
            f"Newest evaluation when this folder was written (step {step}):",
            "",
            *_metric_table(state.eval_metrics[step]),
            "",
        ]
    out += [
        "The end-of-run evaluation runs after this folder is written: "
        f"`kitchen show {state.run_id}` has its scores.",
        "",
    ]
    return out


def last_step_metrics(metrics: Mapping[str, Any], headline: Sequence[str] = ()) -> dict[str, Any]:
    """The last step's metrics the card shows: the headline ones (all, without any), never
    the clock's."""
    names = [k for k in headline if k in metrics] or sorted(metrics)
    return {k: metrics[k] for k in names if not any(c in k for c in CLOCK)}


def _files(files: Mapping[str, tuple[str, int]]) -> list[str]:
    rows = [[_code(name), _code(sha), str(size)] for name, (sha, size) in sorted(files.items())]
    return ["## Files", "", *_table(["file", "sha256", "bytes"], rows), ""]


def _versions(state: RunState) -> list[str]:
    if not state.versions:
        return []
    rows = [f"- {name} {version}" for name, version in sorted(state.versions.items())]
    return ["## Framework versions", "", *rows, ""]


# --------------------------------------------------------------------------- helpers


def _parent_source(state: RunState) -> str | None:
    return next((r.source for r in state.lineage if r.kind == "base_model"), None)


def _named(dataset: Any) -> bool:
    """A dataset given by name (``kitchen/arith-chat``, a hub id), not a local file or folder:
    only a name goes into the front matter's ``datasets``."""
    if not isinstance(dataset, str) or not dataset:
        return False
    local = dataset.startswith(("/", ".", "~")) or "\\" in dataset
    return not local and Path(dataset).suffix.lower() not in FILE_SUFFIXES


def _metric_table(metrics: Mapping[str, Any]) -> list[str]:
    rows = [[_code(k), json.dumps(v)] for k, v in sorted(metrics.items())]
    return _table(["metric", "value"], rows)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
    ]


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _q(text: str) -> str:
    """A YAML scalar: JSON's quoted string is valid YAML."""
    return json.dumps(text, ensure_ascii=False)


def _sha256(path: Path) -> tuple[str, int]:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest(), path.stat().st_size
