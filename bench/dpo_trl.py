"""TRL's DPOTrainer (sigmoid loss) on dpo_basic's model, pairs, LoRA and optimiser settings.

TRL is not a dependency of kitchen: run this in an environment of its own that sees kitchen's
(see bench/README.md, "DPO"). The pairs are kitchen's renderings, decoded back to text, so TRL
sees the same ``User: … Assistant: `` prompts and the same completions; TRL appends the eos
token to each completion as kitchen's renderer does. Held-out scores are computed from the
trained adapter (policy) and the same model with the adapter disabled (reference) on kitchen's
own held-out renderings, exactly as ``bench/dpo.py`` scores kitchen and the hand-written loop.

    python bench/dpo_trl.py [--steps 60] [--lr 5e-3] [--beta 0.3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dpo_pairs import (
    ADAM,
    BATCH_PAIRS,
    BETA,
    LEARNING_RATE,
    LORA_ALPHA,
    LORA_RANK,
    MODEL,
    Pairs,
    batch_indices,
    load_pairs,
    pair_sums,
    scores,
)


def _text_rows(pairs: Pairs, tokenizer: Any, idx: list[int]) -> list[dict[str, str]]:
    """prompt / chosen / rejected text of kitchen's renderings (completion without its eos)."""
    rows = []
    for i in idx:
        chosen, rejected = pairs.train[i]
        out = {}
        for key, datum in (("chosen", chosen), ("rejected", rejected)):
            tokens = [datum.model_input.to_ints()[0], *datum.loss_fn_inputs["target_tokens"].data]
            weights = [0.0, *datum.loss_fn_inputs["weights"].data]
            start = weights.index(1.0)
            body = [t for t, w in zip(tokens, weights, strict=True) if w][:-1]  # drop eos
            out["prompt"] = tokenizer.decode(tokens[:start])
            out[key] = tokenizer.decode(body)
        rows.append(out)
    return rows


def _score(model: Any, pairs: Pairs) -> dict[str, float]:
    import torch

    model.eval()
    with torch.no_grad():
        policy = pair_sums(model, pairs.test)
        with model.disable_adapter():
            reference = pair_sums(model, pairs.test)
    return scores(policy, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--beta", type=float, default=BETA)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    pairs = load_pairs()
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    order = [i for b in batch_indices(len(pairs.train), args.steps) for i in b]
    dataset = Dataset.from_list(_text_rows(pairs, tokenizer, order))
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(
            output_dir=out,
            loss_type="sigmoid",
            beta=args.beta,
            learning_rate=args.lr,
            lr_scheduler_type="linear",
            warmup_steps=0,
            adam_beta1=ADAM["betas"][0],
            adam_beta2=ADAM["betas"][1],
            adam_epsilon=ADAM["eps"],
            weight_decay=ADAM["weight_decay"],
            max_grad_norm=0.0,
            per_device_train_batch_size=BATCH_PAIRS,
            max_steps=args.steps,
            max_length=128,
            use_cpu=True,
            bf16=False,  # TRL's default is bf16 autocast; kitchen and the hand loop run float32
            gradient_checkpointing=False,  # on by default in TRL; neither of the others uses it
            seed=0,
            report_to="none",
            logging_steps=10,
            save_strategy="no",
            train_sampling_strategy="sequential",
            dataloader_drop_last=True,
        )
        lora = LoraConfig(
            r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules="all-linear", task_type="CAUSAL_LM"
        )
        trainer = DPOTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
        )
        before = _score(trainer.model, pairs)
        trainer.model.train()
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
        after = _score(trainer.model, pairs)
    print(
        f"TRL DPOTrainer: {args.steps} steps in {seconds:.1f} s "
        f"({seconds / args.steps * 1e3:.0f} ms/step incl. its data loading); test/accuracy "
        f"{before['test/accuracy']:.4f} -> {after['test/accuracy']:.4f}, policy_prefers_chosen "
        f"{before['test/policy_prefers_chosen']:.4f} -> {after['test/policy_prefers_chosen']:.4f}"
    )


if __name__ == "__main__":
    main()
