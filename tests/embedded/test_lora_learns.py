"""The promise of the embedded default: a minute of LoRA visibly teaches the tiny model.

Plain peft and torch on the role_colon renderer's output, with the sl_basic defaults (rank
16, alpha 32, lr 3e-3 decaying linearly, batch 32, 60 steps, loss on the assistant reply):
held-out NLL must fall by at least 30 % and greedy exact match must rise by 20 points.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from kitchen.embedded import TINY_MODEL_DIR
from kitchen.embedded.datasets import check_answer, load_embedded
from kitchen.renderers import get_renderer

NAME = "kitchen/arith-chat"


def _batch(renderer: Any, rows: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
    import torch

    examples = [renderer.build_supervised_example(r["messages"]) for r in rows]
    width = max(mi.length for mi, _ in examples)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    weights = torch.zeros(len(rows), width)
    for i, (mi, w) in enumerate(examples):
        ids[i, : mi.length] = torch.tensor(mi.to_ints())
        mask[i, : mi.length] = 1
        weights[i, : mi.length] = torch.tensor(w)
    return ids, mask, weights


def _nll(model: Any, renderer: Any, rows: list[dict[str, Any]]) -> Any:
    """Mean negative log-likelihood of the weighted (assistant) tokens."""
    import torch

    ids, mask, weights = _batch(renderer, rows)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    logprobs = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
    return -(logprobs * weights[:, 1:]).sum() / weights[:, 1:].sum()


def _accuracy(model: Any, renderer: Any, rows: list[dict[str, Any]]) -> float:
    import torch

    correct = 0
    for row in rows:
        prompt = renderer.build_generation_prompt(row["messages"][:-1]).to_ints()
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False)
        message, _ = renderer.parse_response(out[0, len(prompt) :].tolist())
        correct += check_answer(NAME, row, message["content"])
    return correct / len(rows)


@pytest.mark.slow
def test_sixty_lora_steps_show_learning() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(TINY_MODEL_DIR))
    model = AutoModelForCausalLM.from_pretrained(str(TINY_MODEL_DIR)).eval()
    renderer = get_renderer("role_colon", tokenizer)
    train, test = load_embedded(NAME, "train"), load_embedded(NAME, "test")
    with torch.no_grad():
        nll_before = float(_nll(model, renderer, test))
    acc_before = _accuracy(model, renderer, test)

    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0)
    peft_model = get_peft_model(model, config)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0)
    random.Random(0).shuffle(train)
    peft_model.train()
    for step in range(60):
        for group in optimizer.param_groups:
            group["lr"] = 3e-3 * (1 - step / 60)
        _nll(peft_model, renderer, train[step * 32 : (step + 1) * 32]).backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        nll_after = float(_nll(peft_model, renderer, test))
    acc_after = _accuracy(peft_model, renderer, test)

    assert nll_after <= 0.7 * nll_before, (nll_before, nll_after)
    assert acc_after >= acc_before + 0.20, (acc_before, acc_after)
