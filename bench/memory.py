"""Peak memory of one supervised step of the local backend on a real vocabulary.

A Qwen3-shaped model with Qwen3's 151,936-token vocabulary and random weights (hidden 128,
4 layers by default: about 20 M parameters, most of them the tied embedding), LoRA rank 16,
one forward_backward (cross_entropy) + optim_step on ``--batch`` × ``--seq`` random tokens.
Each case runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own:

- ``micro``: the backend's micro-batches of ``--budget`` padded tokens, chunked output head;
- ``one-batch``: ``max_tokens_per_microbatch=None`` and the chunked head switched off, i.e. the
  backend as it was before micro-batches: one forward over the whole call, full logits.

The one-batch case of the full step (64 × 512) needs tens of GiB and would be killed on a
small machine, so it is measured at several smaller batches and extrapolated linearly.

    python bench/memory.py                       # the cases of bench/README.md
    python bench/memory.py --case micro --batch 64 --seq 512 --budget 4096
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VOCAB = 151_936


def write_model(folder: Path, hidden: int, layers: int) -> int:
    """A random Qwen3-shaped model with Qwen3's vocabulary; returns its parameter count."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from kitchen.embedded import TINY_MODEL_DIR
    from kitchen.testing.families import TOKENIZER_FILES

    config = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 128),
        head_dim=64,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(folder))
    for name in TOKENIZER_FILES:  # the loader wants a tokenizer; the bench feeds token ids
        shutil.copyfile(TINY_MODEL_DIR / name, folder / name)
    return sum(p.numel() for p in model.parameters())


def one_step(folder: str, case: str, batch: int, seq: int, budget: int | None) -> dict[str, Any]:
    """Run in the child: load, one step, report peak RSS and wall times."""
    import random
    import resource

    from kitchen.adapters.local_torch import create_training_client, head
    from kitchen.types import AdamParams, Datum, ModelInput, TensorData

    if case == "one-batch":
        head.CHUNK_ELEMENTS = 1 << 62  # the model's own full logits, as before micro-batches
        budget = None
    rng = random.Random(0)
    data = []
    for _ in range(batch):
        tokens = [rng.randrange(VOCAB) for _ in range(seq + 1)]
        inputs = {
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "weights": TensorData.from_list([1.0] * seq, "float32"),
        }
        data.append(Datum(ModelInput.from_ints(tokens[:-1]), inputs))
    client = create_training_client(
        model_name=folder, lora_rank=16, device="cpu", max_tokens_per_microbatch=budget
    )
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    loss = client.forward_backward(data, "cross_entropy").result().metrics["loss:sum"]
    client.optim_step(AdamParams(learning_rate=1e-4)).result()
    seconds = time.perf_counter() - start
    client.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "case": case,
        "batch": batch,
        "seq": seq,
        "budget": budget,
        "peak_rss_gib": peak / 2**30,
        "after_load_gib": loaded / 2**30,
        "step_s": seconds,
        "tokens_per_s": batch * seq / seconds,
        "loss_per_token": loss / (batch * seq),
    }


def run_child(folder: str, case: str, batch: int, seq: int, budget: int | None) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", folder, "--case", case]
    args += ["--batch", str(batch), "--seq", str(seq), "--budget", str(budget or 0)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {"case": case, "batch": batch, "seq": seq, "budget": budget, "error": tail[0]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def show(row: dict[str, Any]) -> None:
    what = f"{row['case']:9s} {row['batch']:3d} x {row['seq']} budget {row['budget']}"
    if "error" in row:
        print(f"{what}: FAILED {row['error']}", flush=True)
        return
    print(
        f"{what}: peak RSS {row['peak_rss_gib']:.2f} GiB (after load {row['after_load_gib']:.2f})"
        f", step {row['step_s']:.1f} s, {row['tokens_per_s']:.0f} tokens/s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", metavar="FOLDER")
    parser.add_argument("--case", choices=("micro", "one-batch"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--budget", type=int, default=4096, help="0: none")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    if args.child:
        row = one_step(args.child, args.case, args.batch, args.seq, args.budget or None)
        print(json.dumps(row))
        return
    with tempfile.TemporaryDirectory() as scratch:
        params = write_model(Path(scratch), args.hidden, args.layers)
        print(
            f"Qwen3-shaped, hidden {args.hidden}, {args.layers} layers, vocabulary {VOCAB}: "
            f"{params / 1e6:.1f} M parameters; LoRA rank 16; one step",
            flush=True,
        )
        cases = [("micro", args.batch, args.budget)] if args.case != "one-batch" else []
        if args.case != "micro":
            cases += [("micro", 8, args.budget)]
            cases += [("one-batch", b, None) for b in (2, 4, 8)]
        rows = []
        for case, batch, budget in cases:
            rows.append(run_child(scratch, case, batch, args.seq, budget))
            show(rows[-1])
        ones = [r for r in rows if r["case"] == "one-batch" and "error" not in r]
        if len(ones) >= 2:
            (b0, m0), (b1, m1) = (
                (ones[0]["batch"], ones[0]["peak_rss_gib"]),
                (
                    ones[-1]["batch"],
                    ones[-1]["peak_rss_gib"],
                ),
            )
            slope = (m1 - m0) / (b1 - b0)
            guess = m1 + slope * (args.batch - b1)
            print(
                f"one-batch extrapolated to {args.batch} x {args.seq}: {guess:.1f} GiB "
                f"({slope:.2f} GiB per sequence of {args.seq})",
                flush=True,
            )


if __name__ == "__main__":
    main()
