"""Training throughput of the local torch backend beside a plain torch + peft loop.

Both train the same LoRA on the same model and the same batches: the backend through
forward_backward + optim_step with submit-ahead (as the supervised loop drives it), the plain
loop by hand. Repeats alternate between the two so machine noise hits both alike; the
median ratio of paired runs is the backend's efficiency (goal: >= 0.98).

    python bench/local_backend.py [--steps 10] [--repeats 20] [--batch 8] [--seq 64] [--threads N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
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


def backend_run(client: Any, batches: list[list[Datum]], steps: int) -> None:
    """Submit step i+1 before reading step i, as the supervised training loop does."""

    def submit(i: int) -> tuple[Any, Any]:
        return client.forward_backward(batches[i % len(batches)]), client.optim_step(ADAM)

    pending = submit(0)
    for i in range(1, steps + 1):
        upcoming = submit(i) if i < steps else None
        pending[0].result().metrics["loss:sum"]
        pending[1].result()
        if upcoming is not None:
            pending = upcoming


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

    @staticmethod
    def tensors(batch: list[Datum]) -> tuple[Any, Any, Any, Any]:
        import torch
        from torch.nn.utils.rnn import pad_sequence

        def padded(rows: list[Any]) -> Any:
            return pad_sequence([torch.tensor(r) for r in rows], batch_first=True)

        return (
            padded([d.model_input.to_ints() for d in batch]),
            padded([[1] * d.model_input.length for d in batch]),
            padded([d.loss_fn_inputs["target_tokens"].data for d in batch]),
            padded([d.loss_fn_inputs["weights"].data for d in batch]),
        )

    def step(self, batch: list[Datum]) -> float:
        import torch
        import torch.nn.functional as F

        ids, mask, targets, weights = self.tensors(batch)
        logits = self.model(input_ids=ids, attention_mask=mask).logits
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        loss = (nll.view_as(weights) * weights).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, ADAM.grad_clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def run(self, batches: list[list[Datum]], steps: int) -> None:
        for i in range(steps):
            self.step(batches[i % len(batches)])


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of every thread of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128, help="random model only")
    parser.add_argument("--layers", type=int, default=4, help="random model only")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    # peft reads a property transformers 5 deprecated; nothing for us to act on.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        folder, label = model_folder(Path(scratch), args.hidden, args.layers)
        timings, tokens, costs = measure(folder, args)
    report(label, args, tokens, timings, costs)


Timings = dict[str, list[tuple[float, float]]]


def measure(folder: str, args: argparse.Namespace) -> tuple[Timings, int, dict[str, float]]:
    """Alternate the two loops run by run; every batch shape is seen once, untimed, first."""
    from kitchen.adapters.local_torch import create_training_client

    client = create_training_client(model_name=folder, lora_rank=LORA_RANK, device="cpu")
    plain = PlainLoop(folder)
    vocab = int(plain.model.get_input_embeddings().num_embeddings)
    batches = make_batches(8, args.batch, args.seq, vocab)
    tokens = sum(sum(d.model_input.length for d in batches[i % 8]) for i in range(args.steps))
    runs: dict[str, Callable[[], None]] = {
        "backend": lambda: backend_run(client, batches, args.steps),
        "plain": lambda: plain.run(batches, args.steps),
    }
    backend_run(client, batches, len(batches))
    plain.run(batches, len(batches))
    timings: Timings = {"backend": [], "plain": []}
    for r in range(args.repeats):
        for name in ("backend", "plain") if r % 2 == 0 else ("plain", "backend"):
            timings[name].append(timed(runs[name]))
    client.close()
    return timings, tokens, breakdown(plain, batches[0], vocab)


def breakdown(plain: PlainLoop, batch: list[Datum], vocab: int) -> dict[str, float]:
    """Best-of-200 cost of the bookkeeping each loop wraps around the same model calls."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from kitchen.adapters.local_torch import batch as packing
    from kitchen.adapters.local_torch import optim

    for param in plain.params:
        param.grad = torch.ones_like(param)
    lengths = [d.model_input.length for d in batch]
    logprobs = torch.zeros(len(batch), max(lengths))
    with ThreadPoolExecutor(max_workers=1) as worker:
        costs: dict[str, Callable[[], object]] = {
            "backend: Datum -> padded tensors": lambda: packing.pack(
                batch, ("target_tokens", "weights"), vocab, "cpu"
            ),
            "backend: logprobs -> TensorData": lambda: packing.to_outputs(logprobs, lengths),
            "backend: grad norm": lambda: optim.grad_norm(plain.params),
            "backend: two worker-thread hops": lambda: [worker.submit(int).result() for _ in "ab"],
            "plain:   Datum -> padded tensors": lambda: plain.tensors(batch),
            "plain:   clip_grad_norm_": lambda: torch.nn.utils.clip_grad_norm_(plain.params, 1e9),
        }
        measured = {name: best_ms(cost) for name, cost in costs.items()}
    plain.optimizer.zero_grad(set_to_none=True)
    return measured


def best_ms(fn: Callable[[], object], repeats: int = 200) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def report(
    label: str, args: argparse.Namespace, tokens: int, timings: Timings, costs: dict[str, float]
) -> None:
    """Best, median, and per CPU-second rates. On a shared machine other work only ever adds
        wall time, so the best run is the cleanest view of the code's own cost, the median shows
        the spread, and CPU time is what the loop itself consumed. The paired ratio compares each
    backend run with the plain run next to it, which cancels slow drifts in machine load."""
    print(
        f"model: {label}; batch {args.batch} x <= {args.seq} tokens, {args.steps} steps a run, "
        f"{args.repeats} runs each, LoRA rank {LORA_RANK}, threads {args.threads or 'default'}"
    )
    views = {
        "best": lambda ts: tokens / min(w for w, _ in ts),
        "median": lambda ts: tokens / statistics.median(w for w, _ in ts),
        "per-cpu-s": lambda ts: tokens / statistics.median(c for _, c in ts),
    }
    rates = {view: {n: f(ts) for n, ts in timings.items()} for view, f in views.items()}
    print(f"  {'tokens/s':10s}" + "".join(f"{view:>12s}" for view in views))
    for name in timings:
        print(f"  {name:10s}" + "".join(f"{rates[v][name]:12.0f}" for v in views))
    ratios = "".join(f"{rates[v]['backend'] / rates[v]['plain']:12.3f}" for v in views)
    print(f"  {'ratio':10s}{ratios}")
    pairs = [p[0] / b[0] for b, p in zip(timings["backend"], timings["plain"], strict=True)]
    print(
        f"  paired ratio (median over repeats of plain time / backend time, adjacent runs): "
        f"{statistics.median(pairs):.3f}   goal >= 0.98"
    )
    step_ms = min(w for w, _ in timings["backend"]) / args.steps * 1e3
    print(f"per-step bookkeeping, ms (best of 200), beside one whole step of {step_ms:.1f} ms:")
    for name, ms in costs.items():
        print(f"  {name:36s} {ms:7.3f}")


if __name__ == "__main__":
    main()
