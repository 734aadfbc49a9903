"""The model card (README.md) in a final adapter folder: what it holds, read back with the Hugging
Face hub's own parser and compared with what `kitchen replay --json` / `kitchen show` have; and
that a run killed mid-run and resumed writes the same bytes as an uninterrupted one.

Both reuse the crash tests' uninterrupted reference run (SMALL_SL_CONFIG, run id ``reference``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine.audit import verify_export
from kitchen.store.canonical import canonical_json
from kitchen.testing.cli import make_kitchen
from kitchen.testing.compare import files
from kitchen.testing.runs import SMALL_SL_CONFIG, adapter_sha, kill_chain, replay_json


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_card_holds_the_runs_record(reference_home: Path) -> None:
    from huggingface_hub import ModelCard

    final = reference_home / "reference" / "final"
    text = (final / "README.md").read_text(encoding="utf-8")
    card = ModelCard.load(final / "README.md")
    assert card.data.to_dict() == {
        "base_model": "kitchen/tiny",
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": ["kitchen", "lora", "sl_basic", "supervised"],
        "datasets": ["kitchen/arith-chat"],
    }
    assert "\n# reference\n" in text

    state = replay_json(make_kitchen(reference_home), "reference")["state"]
    # the data fingerprint: as recorded
    assert f"- data fingerprint (sha256): `{state['data_fingerprint']}`" in text

    # the identity config as given (SMALL_SL_CONFIG) and the defaults; no operating setting
    config = _section(text, "Training configuration")
    for line in (
        "max_steps: 20",
        "save_every: 5",
        "batch_size: 8",
        "max_length: 64",
        "eval_examples: 4",
        "lora_rank: 16",
        "learning_rate: 0.003",
        'model_name: "kitchen/tiny"',
        "seed: 0",
    ):
        assert f"\n{line}\n" in config, line
    assert "Seed 0; 20 optimizer steps." in config
    for operating in ("device", "torch_threads", "keep_checkpoints", "pipeline", "adapters"):
        assert f"\n{operating}:" not in config

    # the last step's headline metrics (no clock) and the newest evaluation: show's values
    metrics = _section(text, "Metrics")
    last = state["step_metrics"]["19"]
    assert last["learning_rate"] == 0.003 * (1 - 19 / 20)
    assert "Last step (19, counted from 0):" in metrics
    assert f"| `learning_rate` | {json.dumps(last['learning_rate'])} |" in metrics
    assert f"| `train_mean_nll` | {json.dumps(last['train_mean_nll'])} |" in metrics
    assert "tokens_per_s" not in metrics and "step_time_s" not in metrics
    assert "Newest evaluation when this folder was written (step 0):" in metrics
    start = state["eval_metrics"]["0"]
    for name in ("test/accuracy", "test/nll"):
        assert f"| `{name}` | {json.dumps(start[name])} |" in metrics
    assert "| `test/examples` | 4 |" in metrics

    # the adapter files' hashes, and the recorded folder sha256 covers the card
    listed = _section(text, "Files")
    sha = adapter_sha(reference_home, "reference")
    size = (final / "adapter_model.safetensors").stat().st_size
    assert f"| `adapter_model.safetensors` | `{sha}` | {size} |" in listed
    assert "README.md" not in listed
    (recorded,) = [a for a in state["artifacts"] if a["kind"] == "final_weights"]
    assert (recorded["sha256"], recorded["bytes"]) == LocalBlobStore.hash_path(final)
    assert f"- peft {state['versions']['peft']}" in text

    # nothing of the clock, the host or the attempt
    attempt = state["attempts"][0]
    for volatile in (attempt["host"], attempt["worker"], state["created_at"][:10]):
        assert volatile not in text


@pytest.mark.slow
def test_card_of_a_killed_and_resumed_run_is_the_same_bytes(
    reference_home: Path, tmp_path: Path
) -> None:
    """Killed in step 12 and resumed from step 10 (steps re-executed, their metrics logged
    again): the whole folder, card and marker included, equals the uninterrupted run's."""
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    points = ("stage:optim_step:before@13",)
    kill_chain(kitchen, ("sl_basic", *SMALL_SL_CONFIG), "reference", points)
    assert files(home / "reference" / "final") == files(reference_home / "reference" / "final")
    ours = replay_json(kitchen, "reference")["state"]
    assert ours["superseded"], "the run re-executed no step"
    theirs = replay_json(make_kitchen(reference_home), "reference")["state"]
    assert [a["sha256"] for a in ours["artifacts"] if a["kind"] == "final_weights"][-1] == [
        a["sha256"] for a in theirs["artifacts"] if a["kind"] == "final_weights"
    ][-1]


def test_export_carries_the_card_and_verify_ties_it_to_the_final_adapter(
    reference_home: Path, tmp_path: Path
) -> None:
    kitchen = make_kitchen(reference_home)
    out = tmp_path / "reference.jsonl"
    r = kitchen("export", "reference", "--out", str(out))
    assert r.code == 0, r.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    summary = json.loads(lines[-1])
    final = reference_home / "reference" / "final"
    card = summary["model_card"]
    assert card["uri"] == "reference/final"
    assert card["text"] == (final / "README.md").read_text(encoding="utf-8")
    assert [f[0] for f in card["files"]] == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    verified = kitchen("verify", str(out))
    assert verified.code == 0, verified.stderr
    assert "verified: the model card is the recorded final adapter's README.md" in verified.stdout

    def altered(change: Callable[[dict[str, Any]], None]) -> list[bytes]:
        doc = json.loads(lines[-1])
        change(doc["model_card"])
        return [ln.encode() for ln in lines[:-1]] + [canonical_json(doc).encode()]

    def text(card: dict[str, Any]) -> None:
        card["text"] = card["text"].replace("kitchen/tiny", "kitchen/other")

    def weights(card: dict[str, Any]) -> None:
        card["files"][2][1] = "0" * 64

    check = verify_export(altered(text))
    assert (check.ok, check.reason) == (
        False,
        "the summary's model card text is not the final adapter's README.md",
    )
    check = verify_export(altered(weights))
    assert (check.ok, check.reason) == (
        False,
        "the summary's model card lists files that are not the recorded final adapter",
    )
