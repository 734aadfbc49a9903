"""Training throughput of the local backend on a Qwen3-0.6B-shaped model (random weights).

Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 query / 8 key-value heads of 128, MLP 3072,
vocabulary 151,936, tied embeddings), LoRA rank 16 on every linear layer, bfloat16 (mixed:
LoRA and AdamW in float32), SDPA attention, one forward_backward + optim_step per step on
random tokens. For each sequence length: 2 warm-up steps, then ``--steps`` timed ones.

Reported per length: tokens/s, peak accelerator memory (``torch.cuda.max_memory_allocated``),
and MFU = achieved FLOP/s ÷ the device's dense bfloat16 peak (``--peak-tflops``, 989 for an
H100 SXM), where a LoRA step is counted as

    FLOP/token = 4·N  +  6·L·h·d·T/2

N the base model's parameters (2N forward, 2N for the activations' gradients; the frozen
weights get no gradient, the rank-16 LoRA's own FLOPs are under 1 % and left out), and the
second term causal attention (QKᵀ and PV: 2·2·h·d per past position, half the positions
visible on average; backward twice the forward) over L layers, h heads of d, sequence T.

    python bench/throughput.py --seq 2048 --seq 16384 [--tokens 16384] [--steps 5]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from kitchen.types import AdamParams, Datum, ModelInput, TensorData

VOCAB = 151_936
SHAPE = {
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": VOCAB,
    "max_position_embeddings": 40960,
    "tie_word_embeddings": True,
}


def write_model(folder: Path, layers: int) -> int:
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from kitchen.embedded import TINY_MODEL_DIR
    from kitchen.testing.families import TOKENIZER_FILES

    torch.manual_seed(0)
    shape = {**SHAPE, "num_hidden_layers": layers}
    model = AutoModelForCausalLM.from_config(Qwen3Config(**shape), dtype=torch.bfloat16)
    model.save_pretrained(str(folder))
    for name in TOKENIZER_FILES:
        shutil.copyfile(TINY_MODEL_DIR / name, folder / name)
    return sum(p.numel() for p in model.parameters())


def batch(count: int, seq: int, rng: random.Random) -> list[Datum]:
    out = []
    for _ in range(count):
        tokens = [rng.randrange(VOCAB) for _ in range(seq + 1)]
        inputs = {
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "weights": TensorData.from_list([1.0] * seq, "float32"),
        }
        out.append(Datum(ModelInput.from_ints(tokens[:-1]), inputs))
    return out


def flop_per_token(params: int, seq: int, layers: int) -> float:
    heads, dim = SHAPE["num_attention_heads"], SHAPE["head_dim"]
    return 4.0 * params + 6.0 * layers * heads * dim * seq / 2


def measure(folder: str, params: int, seq: int, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from kitchen.adapters.local_torch import create_training_client

    count = max(1, args.tokens // seq)
    client = create_training_client(
        model_name=folder,
        lora_rank=16,
        device=args.device,
        dtype=args.dtype,
        max_tokens_per_microbatch=max(seq, args.budget),
        gradient_checkpointing=args.checkpointing,
    )
    rng = random.Random(seq)
    steps = [batch(count, seq, rng) for _ in range(args.steps + 2)]
    adam = AdamParams(learning_rate=1e-5)
    try:
        for data in steps[:2]:
            client.forward_backward(data).result()
            client.optim_step(adam).result()
        cuda = args.device == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for data in steps[2:]:
            client.forward_backward(data)
            client.optim_step(adam)
        client.optim_step(adam).result()  # waits for every queued step
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    finally:
        client.close()
    tokens = args.steps * count * seq
    rate = tokens / seconds
    return {
        "seq": seq,
        "sequences_per_step": count,
        "tokens_per_s": rate,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        "mfu": rate * flop_per_token(params, seq, args.layers) / (args.peak_tflops * 1e12),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, action="append", help="repeatable; default 2048, 16384")
    parser.add_argument("--tokens", type=int, default=16384, help="tokens per step")
    parser.add_argument("--budget", type=int, default=16384, help="max_tokens_per_microbatch")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--layers", type=int, default=28, help="fewer for a smoke test")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    args = parser.parse_args()
    import torch

    name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        params = write_model(Path(scratch), args.layers)
        what = f"{params / 1e6:.0f} M parameters, LoRA rank 16, {args.dtype}"
        print(f"Qwen3-0.6B-shaped, {args.layers} layers: {what}", flush=True)
        for seq in args.seq or [2048, 16384]:
            try:
                row = measure(scratch, params, seq, args)
            except Exception as exc:  # an OOM at one length still reports the others
                print(f"seq {seq}: FAILED {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                continue
            print(
                f"seq {row['seq']:6d} x {row['sequences_per_step']:2d}/step: "
                f"{row['tokens_per_s']:8.0f} tokens/s, peak {row['peak_gib']:.1f} GiB, "
                f"MFU {100 * row['mfu']:.1f} % (checkpointing {args.checkpointing})",
                flush=True,
            )


if __name__ == "__main__":
    main()
