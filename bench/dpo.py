"""DPO step time and held-out accuracy: kitchen beside a hand-written torch + peft DPO loop.

Both train a rank-16 LoRA (alpha 32, every linear projection) on the shipped ``kitchen/tiny``
with dpo_basic's pairs, batches (32 pairs), β, AdamW settings and linear learning-rate decay.

- kitchen: the calls the preference workflow makes — the DPO loss through
  ``forward_backward_custom_loss`` (one pass on the local backend: the loss on the
  log-probabilities of the forward pass the backward uses) and ``optim_step``.
- kitchen, two passes (``--two-pass``): the same through ``forward_backward_custom_tinker_way``
  (a forward pass, the gradient on the client, a plain forward_backward), what a remote
  backend does.
- by hand: one forward with gradients over the 64 sequences, the loss, backward, AdamW.

Step time: ``--rounds`` rounds, each timing ``--time-steps`` steps of each from fresh weights,
the order turned round from one round to the next, so machine noise hits all alike; the figure
is the median over rounds of (kitchen step time / hand step time). Accuracy: one run of
``--steps`` steps each (``--steps 0``: none).

    python bench/dpo.py [--steps 60] [--lr 5e-3] [--rounds 7] [--time-steps 10] [--two-pass]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dpo_pairs import (
    ADAM,
    BETA,
    LEARNING_RATE,
    LORA_ALPHA,
    LORA_RANK,
    MODEL,
    Pairs,
    batch_indices,
    load_pairs,
    lr_at,
    pair_sums,
    scores,
)

from kitchen.types import AdamParams, Datum

Trainer = Callable[[list[int], float], None]


# --------------------------------------------------------------------------- kitchen


class Kitchen:
    """The preference workflow's calls on the local backend (no engine around them)."""

    def __init__(self, pairs: Pairs, one_pass: bool = True) -> None:
        from kitchen.adapters.local_torch.service import LocalServiceClient
        from kitchen.workflows.preference.stages.compute_reference_logprobs import _logprobs

        self.pairs = pairs
        self.one_pass = one_pass
        self.service = LocalServiceClient(device="cpu")
        ref = self.service.create_lora_training_client(MODEL, LORA_RANK, seed=0)
        self.ref_train, self.ref_test = _logprobs(ref, pairs.train), _logprobs(ref, pairs.test)
        ref.close()
        self.policy = self.service.create_lora_training_client(MODEL, LORA_RANK, seed=0)

    def step(self, idx: list[int], lr: float) -> None:
        from kitchen.workflows.common.custom_loss import forward_backward_custom_loss
        from kitchen.workflows.preference.loss import dpo_loss

        data = [d for i in idx for d in self.pairs.train[i]]
        loss = dpo_loss(BETA, self.ref_train[idx])
        fb = forward_backward_custom_loss(self.policy, data, loss, one_pass=self.one_pass)
        adam = AdamParams(learning_rate=lr, beta1=0.9, beta2=0.95, eps=1e-8)
        self.policy.optim_step(adam).result()
        fb.result()

    def evaluate(self) -> dict[str, float]:
        from kitchen.workflows.preference.stages.compute_reference_logprobs import _logprobs

        return scores(_logprobs(self.policy, self.pairs.test), self.ref_test)

    def close(self) -> None:
        self.service.close()


# --------------------------------------------------------------------------- by hand


class ByHand:
    """What one would write: pad the 64 sequences, one forward, the DPO loss, backward, AdamW."""

    def __init__(self, pairs: Pairs) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
        lora = LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules="all-linear")
        self.model = get_peft_model(base, lora)
        self.model.train()
        self.pairs = pairs
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=1e-3, **ADAM)  # type: ignore[arg-type]
        with torch.no_grad():
            self.ref_train = self.seq_logprobs(pairs.train)
            self.ref_test = self.seq_logprobs(pairs.test)

    def seq_logprobs(self, pairs: list[tuple[Datum, Datum]]) -> Any:
        return pair_sums(self.model, pairs)

    def step(self, idx: list[int], lr: float) -> None:
        import torch.nn.functional as F

        policy = pair_sums(self.model, [self.pairs.train[i] for i in idx])
        ref = self.ref_train[idx]
        z = BETA * ((policy[:, 0] - ref[:, 0]) - (policy[:, 1] - ref[:, 1]))
        loss = -F.logsigmoid(z).mean()
        for group in self.opt.param_groups:
            group["lr"] = lr
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def evaluate(self) -> dict[str, float]:
        import torch

        with torch.no_grad():
            return scores(self.seq_logprobs(self.pairs.test), self.ref_test)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- measuring


def time_steps(make: Callable[[], Any], batches: list[list[int]], lr: float) -> float:
    """Median seconds per step over ``batches`` (the first step is a warm-up, not counted)."""
    trainer = make()
    times = []
    for i, idx in enumerate(batches):
        t0 = time.perf_counter()
        trainer.step(idx, lr_at(lr, i, len(batches)))
        times.append(time.perf_counter() - t0)
    trainer.close()
    return statistics.median(times[1:])


def train_and_score(make: Callable[[], Any], batches: list[list[int]], lr: float) -> dict:
    trainer = make()
    before = trainer.evaluate()
    t0 = time.perf_counter()
    for i, idx in enumerate(batches):
        trainer.step(idx, lr_at(lr, i, len(batches)))
    seconds = time.perf_counter() - t0
    after = trainer.evaluate()
    trainer.close()
    return {"before": before, "after": after, "train_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--time-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--two-pass", action="store_true", help="also time the two-pass form")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = load_pairs()
    timed = batch_indices(len(pairs.train), args.time_steps + 1)
    makers: dict[str, Callable[[], Any]] = {
        "kitchen": lambda: Kitchen(pairs),
        "by hand": lambda: ByHand(pairs),
    }
    if args.two_pass:
        makers["kitchen, two passes"] = lambda: Kitchen(pairs, one_pass=False)
    times: dict[str, list[float]] = {name: [] for name in makers}
    for r in range(args.rounds):
        order = list(makers) if r % 2 == 0 else list(reversed(makers))
        for name in order:
            times[name].append(time_steps(makers[name], timed, args.lr))
        line = ", ".join(f"{n} {times[n][-1] * 1e3:.0f} ms/step" for n in makers)
        print(f"round {r + 1}: {line}", flush=True)
    for name in makers:
        if name == "by hand":
            continue
        ratios = [k / h for k, h in zip(times[name], times["by hand"], strict=True)]
        print(
            f"{name}: {statistics.median(times[name]) * 1e3:.0f} ms/step median, by hand "
            f"{statistics.median(times['by hand']) * 1e3:.0f} ms; {name}/by-hand ratio per "
            f"round {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}"
        )
    if not args.steps:
        return
    batches = batch_indices(len(pairs.train), args.steps)
    for name, make in makers.items():
        res = train_and_score(make, batches, args.lr)
        b, a = res["before"], res["after"]
        print(
            f"{name}: {args.steps} steps in {res['train_s']:.1f} s; test/accuracy "
            f"{b['test/accuracy']:.4f} -> {a['test/accuracy']:.4f}, policy_prefers_chosen "
            f"{b['test/policy_prefers_chosen']:.4f} -> {a['test/policy_prefers_chosen']:.4f}"
        )


if __name__ == "__main__":
    main()
