"""Training throughput of the local torch backend beside a plain torch + peft loop.

Both train the same LoRA on the same model and the same batches: the backend through
forward_backward + optim_step with submit-ahead (as the supervised loop drives it), the plain
loop by hand. Repeats alternate between the two so machine noise hits both alike; the
ratio of median tokens/s is the backend's efficiency (goal: >= 0.98).

    python bench/local_backend.py [--steps 20] [--repeats 5] [--batch 8] [--seq 64] [--threads N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kitchen.types import AdamParams, Datum, ModelInput, TensorData

ADAM = AdamParams(learning_rate=1e-3, grad_clip_norm=1.0)
LORA_RANK = 16


def model_folder(scratch: Path, hidden: int, layers: int) -> tuple[str, str]:
    """The shipped tiny model when it is built, else a random Llama written to ``scratch``."""
    from kitchen.embedded import TINY_MODEL_DIR
    from kitchen.testing.tiny_llama import write_tiny_llama

    if (TINY_MODEL_DIR / "config.json").is_file():
        return str(TINY_MODEL_DIR), "kitchen/tiny (shipped)"
    write_tiny_llama(scratch, hidden=hidden, layers=layers, heads=4)
    return str(scratch), f"random Llama, hidden {hidden}, {layers} layers"


def make_batches(count: int, size: int, seq: int, vocab: int) -> list[list[Datum]]:
    """Sequences of seq/2..seq tokens, loss on their second half, as a renderer would give."""
    rng = random.Random(0)
    batches = []
    for _ in range(count):
        batch = []
        for _ in range(size):
            n = rng.randint(seq // 2, seq)
            tokens = [rng.randrange(4, vocab) for _ in range(n + 1)]
            weights = [0.0] * (n // 2) + [1.0] * (n - n // 2)
            inputs = {
                "target_tokens": TensorData.from_list(tokens[1:], "int64"),
                "weights": TensorData.from_list(weights, "float32"),
            }
            batch.append(Datum(ModelInput.from_ints(tokens[:-1]), inputs))
        batches.append(batch)
    return batches


def backend_run(client: Any, batches: list[list[Datum]], steps: int) -> float:
    """Submit step i+1 before reading step i, as the supervised training loop does."""
    started = time.perf_counter()
    pending = (client.forward_backward(batches[0]), client.optim_step(ADAM))
    for i in range(1, steps + 1):
        upcoming = None
        if i < steps:
            upcoming = (
                client.forward_backward(batches[i % len(batches)]),
                client.optim_step(ADAM),
            )
        pending[0].result().metrics["loss:sum"]
        pending[1].result()
        if upcoming is not None:
            pending = upcoming
    return time.perf_counter() - started


class PlainLoop:
    """What one would write by hand: pad the batch, forward, weighted NLL, backward, AdamW."""

    def __init__(self, folder: str) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        torch.manual_seed(0)
        config = LoraConfig(r=LORA_RANK, lora_alpha=32, target_modules="all-linear")
        self.model = get_peft_model(base, config).train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=ADAM.learning_rate,
            betas=(ADAM.beta1, ADAM.beta2),
            eps=ADAM.eps,
            weight_decay=ADAM.weight_decay,
        )

    def step(self, batch: list[Datum]) -> float:
        import torch
        import torch.nn.functional as F
        from torch.nn.utils.rnn import pad_sequence

        ids = pad_sequence([torch.tensor(d.model_input.to_ints()) for d in batch], True)
        targets = pad_sequence(
            [torch.tensor(d.loss_fn_inputs["target_tokens"].data) for d in batch], True
        )
        weights = pad_sequence(
            [torch.tensor(d.loss_fn_inputs["weights"].data) for d in batch], True
        )
        mask = pad_sequence(
            [torch.ones(d.model_input.length, dtype=torch.int64) for d in batch], True
        )
        logits = self.model(input_ids=ids, attention_mask=mask).logits
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        loss = (nll.view_as(weights) * weights).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, ADAM.grad_clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def run(self, batches: list[list[Datum]], steps: int) -> float:
        started = time.perf_counter()
        for i in range(steps):
            self.step(batches[i % len(batches)])
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128, help="random model only")
    parser.add_argument("--layers", type=int, default=4, help="random model only")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from kitchen.adapters.local_torch import create_training_client

    with tempfile.TemporaryDirectory() as scratch:
        folder, label = model_folder(Path(scratch), args.hidden, args.layers)
        client = create_training_client(model_name=folder, lora_rank=LORA_RANK, device="cpu")
        plain = PlainLoop(folder)
        vocab = int(plain.model.get_input_embeddings().num_embeddings)
        batches = make_batches(8, args.batch, args.seq, vocab)
        tokens = sum(d.model_input.length for b in batches for d in b) / len(batches) * args.steps
        runs = {
            "backend": lambda: backend_run(client, batches, args.steps),
            "plain": lambda: plain.run(batches, args.steps),
        }
        backend_run(client, batches, len(batches))  # every batch shape once, untimed
        plain.run(batches, len(batches))
        timings: dict[str, list[float]] = {"backend": [], "plain": []}
        for r in range(args.repeats):
            for name in ("backend", "plain") if r % 2 == 0 else ("plain", "backend"):
                timings[name].append(runs[name]())
        client.close()
    report(label, args, tokens, timings)


def report(
    label: str, args: argparse.Namespace, tokens: float, timings: dict[str, list[float]]
) -> None:
    """Best run and median run: on a shared machine other work only ever adds time, so the
    best run is the cleanest view of the code's own cost; the median shows the spread."""
    print(
        f"model: {label}; batch {args.batch} x <= {args.seq} tokens, {args.steps} steps a run, "
        f"{args.repeats} runs each, LoRA rank {LORA_RANK}"
    )
    best = {name: tokens / min(times) for name, times in timings.items()}
    median = {name: tokens / statistics.median(times) for name, times in timings.items()}
    for name in timings:
        print(f"  {name:8s} best {best[name]:8.0f} tokens/s   median {median[name]:8.0f} tokens/s")
    ratio_best = best["backend"] / best["plain"]
    ratio_median = median["backend"] / median["plain"]
    print(
        f"  ratio    best {ratio_best:8.3f}             median {ratio_median:8.3f}   (goal >= 0.98)"
    )


if __name__ == "__main__":
    main()
