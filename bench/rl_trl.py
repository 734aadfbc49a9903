"""TRL's GRPOTrainer on rl_basic's task with rl_basic's settings: held-out gain and wall time.

Runs in an environment of its own that has ``trl`` (kitchen does not depend on it); with the
project's venv at .venv:

    python -m venv /tmp/trl-venv && echo "$PWD/.venv/lib/python3.11/site-packages" \
        > /tmp/trl-venv/lib/python3.11/site-packages/main.pth \
        && /tmp/trl-venv/bin/pip install --no-deps trl
    PYTHONPATH=. /tmp/trl-venv/bin/python bench/rl_trl.py [--steps 60] [--lr 1e-3] [--seed 0]

Same model (kitchen/tiny), LoRA (rank 16, alpha 32, all linear layers), task
(kitchen/arith-rl, rows in the same seeded order), reward (``0.1·(format − 1) + correct``),
8 problems × 8 samples a step, max 8 new tokens, temperature 1, no std scaling
(``scale_rewards="none"``), no KL (``beta=0``), AdamW (0.9, 0.95), learning rate 1e-3
decaying linearly over 60 steps.
TRL's own defaults stay as they are unless ``--fp32``: GRPOConfig trains under bfloat16
autocast with gradient checkpointing (``bf16=True``, ``gradient_checkpointing=True``); it clips
the gradient norm at 1.0 (``max_grad_norm``) and normalises the loss by the number of
completion tokens in the batch (``loss_type="dapo"``); kitchen's ``grad_clip_norm=1.0
loss_aggregation=dapo`` are the same (bench/rl_vs_trl.py).
Held-out accuracy is measured before and after the same way as kitchen's ``test/accuracy``:
greedy, 16 new tokens, ``check_answer`` on the 64 test problems.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

NAME = "kitchen/arith-rl"


def accuracy(model: Any, tok: Any, renderer: Any, rows: list[dict[str, Any]]) -> float:
    import torch

    from kitchen.embedded.datasets import check_answer

    model.eval()
    correct = 0
    for row in rows:
        ids = renderer.build_generation_prompt(row["prompt"]).to_ints()
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=16,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
            )
        message, _ = renderer.parse_response(out[0, len(ids) :].tolist())
        correct += check_answer(NAME, row, str(message["content"]).strip())
    return correct / len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", default="linear", choices=["constant", "linear"])
    ap.add_argument("--seed", type=int, default=0, help="weights' RNG, task order, sampling")
    ap.add_argument(
        "--fp32",
        action="store_true",
        help="bf16=False, gradient_checkpointing=False (GRPOConfig turns both on by default)",
    )
    a = ap.parse_args()

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from kitchen.embedded import TINY_MODEL_DIR
    from kitchen.embedded.datasets import check_answer, load_embedded
    from kitchen.renderers import get_renderer
    from kitchen.workflows.common.loop import epoch_order

    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(str(TINY_MODEL_DIR))
    tok.pad_token = tok.pad_token or tok.eos_token
    renderer = get_renderer("role_colon", tok)
    train, test = load_embedded(NAME, "train"), load_embedded(NAME, "test")
    order = epoch_order(len(train), a.seed, 0)  # kitchen's order for the same seed
    text = [
        {
            "prompt": tok.decode(renderer.build_generation_prompt(train[i]["prompt"]).to_ints()),
            "answer": train[i]["answer"],
        }
        for i in order
    ]

    def reward(
        completions: list[str], completion_ids: list[list[int]], answer: list[str], **_: Any
    ) -> list[float]:
        out = []
        for ids, ans in zip(completion_ids, answer, strict=True):
            message, ok = renderer.parse_response(list(ids))
            right = check_answer(NAME, {"answer": ans}, str(message["content"]).strip())
            out.append(0.1 * (float(ok) - 1.0) + float(right))
        return out

    model = AutoModelForCausalLM.from_pretrained(str(TINY_MODEL_DIR))
    before = accuracy(model, tok, renderer, test)
    config = GRPOConfig(
        output_dir="/tmp/rl-trl-out",
        max_steps=a.steps,
        learning_rate=a.lr,
        lr_scheduler_type=a.schedule,
        adam_beta2=0.95,
        weight_decay=0.0,
        per_device_train_batch_size=64,
        num_generations=8,
        max_completion_length=8,
        temperature=1.0,
        beta=0.0,
        scale_rewards="none",
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=a.seed,
        shuffle_dataset=False,
        **({"bf16": False, "gradient_checkpointing": False} if a.fp32 else {}),
    )
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=Dataset.from_list(text),
        processing_class=tok,
        peft_config=lora,
    )
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    after = accuracy(trainer.model, tok, renderer, test)
    print(
        f"TRL GRPOTrainer {a.steps} steps: test/accuracy {before:.4f} -> {after:.4f} "
        f"({100 * (after - before):+.1f} points), train {wall:.1f} s, seed {a.seed}"
        f"{', fp32' if a.fp32 else ''}"
    )


if __name__ == "__main__":
    main()
