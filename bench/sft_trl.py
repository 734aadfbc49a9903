"""Supervised tokens/s and peak memory: kitchen's local backend beside TRL's ``SFTTrainer``.

The model of ``bench/memory.py`` (Qwen3-shaped, Qwen3's 151,936-token vocabulary, random
weights, hidden 128, 4 layers: about 20 M parameters, most of them the tied embedding) trains
a LoRA of rank 16 / alpha 32 on every linear projection but the output head, on the same
random token sequences in the same order, ``--batch`` sequences of ``--seq`` tokens a step,
AdamW (0.9, 0.95, 1e-8, no weight decay, no clipping) at a constant learning rate of 1e-4,
no gradient checkpointing, in float32 and in bfloat16 (the base in bfloat16, the LoRA weights
and Adam's state in float32 on both sides):

- ``kitchen``: the local backend's ``forward_backward(cross_entropy)`` + ``optim_step`` at its
  default ``max_tokens_per_microbatch`` (one micro-batch here), ``dtype=bfloat16`` for the
  second precision;
- ``trl``: ``SFTTrainer`` on the pre-tokenised rows, the model loaded in the precision
  measured and ``bf16=True`` for bfloat16; every other setting TRL's default (it computes
  its token accuracy and entropy metrics on each step, as its users get).

Each (side, precision) runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own;
the rounds interleave the four, and tokens/s is over the steps after ``--warmup``. TRL is not
a dependency of kitchen: run this with a Python that has both (bench/README.md, "Speed beside
TRL's SFTTrainer").

    PYTHONPATH=. /tmp/trl-venv/bin/python bench/sft_trl.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import VOCAB, write_model

LEARNING_RATE = 1e-4
BETAS = (0.9, 0.95)
EPS = 1e-8
LORA_RANK = 16
LORA_ALPHA = 32


def sequences(count: int, seq: int) -> list[list[int]]:
    """``count`` random sequences of ``seq + 1`` tokens (inputs and their next tokens)."""
    rng = random.Random(0)
    return [[rng.randrange(VOCAB) for _ in range(seq + 1)] for _ in range(count)]


def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def run_kitchen(folder: str, dtype: str, rows: list[list[int]], batch: int) -> list[float]:
    """Step times of the local backend."""
    from kitchen.adapters.local_torch import create_training_client
    from kitchen.types import AdamParams, Datum, ModelInput, TensorData

    client = create_training_client(
        model_name=folder, lora_rank=LORA_RANK, lora_alpha=LORA_ALPHA, device="cpu", dtype=dtype
    )
    adam = AdamParams(learning_rate=LEARNING_RATE, beta1=BETAS[0], beta2=BETAS[1], eps=EPS)
    data = []
    for tokens in rows:
        seq = len(tokens) - 1
        inputs = {
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "weights": TensorData.from_list([1.0] * seq, "float32"),
        }
        data.append(Datum(ModelInput.from_ints(tokens[:-1]), inputs))
    times = []
    for start in range(0, len(data), batch):
        began = time.perf_counter()
        client.forward_backward(data[start : start + batch], "cross_entropy").result()
        client.optim_step(adam).result()
        times.append(time.perf_counter() - began)
    client.close()
    return times


def run_trl(folder: str, dtype: str, rows: list[list[int]], batch: int) -> list[float]:
    """Step times of ``SFTTrainer`` (step begin to step end, as its callbacks see them)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
    # the same forward length as kitchen's: its inputs are a sequence's first `seq` tokens
    dataset = Dataset.from_dict({"input_ids": [tokens[:-1] for tokens in rows]})
    times: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        began = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            Clock.began = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            times.append(time.perf_counter() - Clock.began)

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(
            output_dir=out,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=1,
            max_steps=len(rows) // batch,
            learning_rate=LEARNING_RATE,
            lr_scheduler_type="constant",
            warmup_steps=0,
            optim="adamw_torch",
            adam_beta1=BETAS[0],
            adam_beta2=BETAS[1],
            adam_epsilon=EPS,
            weight_decay=0.0,
            max_grad_norm=0.0,  # no clipping, as kitchen's AdamParams default
            bf16=dtype == "bfloat16",
            gradient_checkpointing=False,
            packing=False,
            max_length=None,
            shuffle_dataset=False,
            dataloader_num_workers=0,
            save_strategy="no",
            report_to=[],
            logging_steps=1,
            disable_tqdm=True,
            use_cpu=True,
            seed=0,
        )
        peft = LoraConfig(
            r=LORA_RANK,
            lora_alpha=LORA_ALPHA,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=AutoTokenizer.from_pretrained(folder),
            peft_config=peft,
            callbacks=[Clock()],
        )
        trainer.train()
    return times


def child(args: argparse.Namespace) -> None:
    import torch

    torch.manual_seed(0)
    rows = sequences(args.batch * (args.warmup + args.steps), args.seq)
    run = run_kitchen if args.side == "kitchen" else run_trl
    times = run(args.child, args.dtype, rows, args.batch)
    timed = times[args.warmup :]
    print(
        json.dumps(
            {
                "side": args.side,
                "dtype": args.dtype,
                "steps": len(timed),
                "step_s": statistics.median(timed),
                "tokens_per_s": args.batch * args.seq * len(timed) / sum(timed),
                "peak_rss_gib": peak_rss_gib(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=("kitchen", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    cases = [(side, d) for d in args.dtypes.split(",") for side in ("kitchen", "trl")]
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as scratch:
        params = write_model(Path(scratch), 128, 4)
        print(
            f"Qwen3-shaped, hidden 128, 4 layers, vocabulary {VOCAB}: {params / 1e6:.1f} M "
            f"parameters; LoRA rank {LORA_RANK}; {args.batch} x {args.seq} tokens a step, "
            f"{args.steps} timed steps after {args.warmup}",
            flush=True,
        )
        for round_ in range(args.rounds):
            order = cases if round_ % 2 == 0 else cases[::-1]
            for side, dtype in order:
                command = [sys.executable, __file__, "--child", scratch, "--side", side]
                command += ["--dtype", dtype, "--batch", str(args.batch), "--seq", str(args.seq)]
                command += ["--warmup", str(args.warmup), "--steps", str(args.steps)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"{side} {dtype}: FAILED\n{done.stderr[-3000:]}", flush=True)
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows[(side, dtype)].append(row)
                print(
                    f"round {round_ + 1} {side:7s} {dtype:8s} {row['tokens_per_s']:8.0f} tokens/s"
                    f"  median step {row['step_s']:.2f} s  peak RSS {row['peak_rss_gib']:.2f} GiB",
                    flush=True,
                )
    print("\nmedian over rounds")
    for dtype in args.dtypes.split(","):
        mine, theirs = rows[("kitchen", dtype)], rows[("trl", dtype)]
        if not mine or not theirs:
            continue
        tps = [statistics.median(r["tokens_per_s"] for r in side) for side in (mine, theirs)]
        rss = [statistics.median(r["peak_rss_gib"] for r in side) for side in (mine, theirs)]
        print(
            f"{dtype:8s} kitchen {tps[0]:7.0f} tokens/s {rss[0]:.2f} GiB | TRL {tps[1]:7.0f} "
            f"tokens/s {rss[1]:.2f} GiB | tokens/s ratio {tps[0] / tps[1]:.2f}, "
            f"peak RSS ratio {rss[0] / rss[1]:.2f}"
        )


if __name__ == "__main__":
    main()
