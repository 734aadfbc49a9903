"""`kitchen run sl_basic` end to end through the real CLI, on SQLite and on Postgres."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen

SMALL = ["max_steps=6", "save_every=3", "batch_size=8", "eval_examples=8", "eval_max_tokens=8"]
SUPERVISED_STAGES = {
    "load_dataset",
    "init_session",
    "init_tokenizer",
    "build_supervised_dataset",
    "set_epoch",
    "get_batch",
    "forward_backward",
    "optim_step",
    "await_future",
    "log_step_metrics",
    "log_epoch_metrics",
    "save_checkpoint",
    "save_final_weights",
    "evaluate",
    "cleanup",
}


def _run_and_check(kitchen: Kitchen, home: Path, run_id: str) -> dict:
    r = kitchen("run", "sl_basic", *SMALL, "--run-id", run_id)
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines()[0] == run_id  # the run id comes first on stdout
    assert "completed after 6 steps" in r.stderr

    replay = kitchen("replay", run_id, "--json")
    assert replay.code == 0, replay.stderr
    doc = json.loads(replay.stdout)
    stages = {e["payload"]["stage"] for e in doc["events"] if e["type"] == "StageCompleted"}
    assert stages == SUPERVISED_STAGES
    types = [e["type"] for e in doc["events"]]
    assert types[:2] == ["RunCreated", "AttemptStarted"] and types[-1] == "RunCompleted"
    state = doc["state"]
    assert state["status"] == "completed" and state["step"] == 6
    assert {"test/nll", "test/accuracy", "train_mean_nll"} <= set(state["final_metrics"])
    assert sorted(int(s) for s in state["step_metrics"]) == [0, 1, 2, 3, 4, 5]
    saved = [e["payload"]["step"] for e in doc["events"] if e["type"] == "CheckpointSaved"]
    assert saved == [3, 6]

    verify = kitchen("replay", run_id, "--verify")
    assert verify.code == 0, verify.stdout + verify.stderr
    assert "verified:" in verify.stdout

    run_dir = home / run_id
    assert (run_dir / "config.json").is_file()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [0, 1, 2, 3, 4, 5]
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step-000003",
        "step-000006",
    ]
    return doc


@pytest.mark.slow
def test_sl_basic_on_sqlite(kitchen: Kitchen, home: Path) -> None:
    _run_and_check(kitchen, home, "e2e-sqlite")
    sample = kitchen("sample", "e2e-sqlite", "What is 2+3?", "--max-tokens", "8")
    assert sample.code == 0, sample.stderr
    assert "(from step-000006, step 6)" in sample.stderr
    again = kitchen("run", "sl_basic", "--run-id", "e2e-sqlite")
    assert again.code == 2
    assert "kitchen resume e2e-sqlite" in again.stderr


@pytest.mark.slow
@pytest.mark.postgres
def test_sl_basic_on_postgres(home: Path, postgres_url: str) -> None:
    kitchen = make_kitchen(home, postgres_url)
    _run_and_check(kitchen, home, "e2e-postgres")
    runs = kitchen("runs", "--json")
    assert [r["run_id"] for r in json.loads(runs.stdout)] == ["e2e-postgres"]


@pytest.mark.slow
def test_final_adapter_loads_with_plain_peft(kitchen: Kitchen, home: Path) -> None:
    r = kitchen("run", "sl_basic", *SMALL, "--run-id", "peft-load")
    assert r.code == 0, r.stderr
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = home / "peft-load" / "final"
    assert (final / "README.md").is_file()  # the model card: peft loads the folder with it
    config = json.loads((final / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    model = PeftModel.from_pretrained(base, str(final))
    tok = AutoTokenizer.from_pretrained(config["base_model_name_or_path"])
    ids = torch.tensor([tok.encode("User: What is 2+3?\n\nAssistant:")])
    out = model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 4 or int(out[0, -1]) == tok.eos_token_id
