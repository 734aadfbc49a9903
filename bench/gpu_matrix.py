"""The architecture matrix on a GPU, without pytest: each family of the backend's test matrix
(kitchen.testing.families) through the local backend on CUDA.

Per family, in float32 (exact checks) and bfloat16 (mixed precision, SDPA): a supervised step
whose loss falls, a two-pass DPO-style custom step, sampling with the KV cache whose log-probs
match the full forward, save_state/load_state byte-identical, and the exported adapter in
plain transformers + peft giving the same log-probs. Imports: torch, transformers, peft,
safetensors and the local backend only, so it runs on a machine with another Python.

    python bench/gpu_matrix.py [--device cuda] [--families llama,qwen3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from kitchen.adapters.local_torch import create_training_client
from kitchen.testing.families import FAMILIES, write_family
from kitchen.types import AdamParams, Datum, ModelInput, SamplingParams, TensorData

STEP = AdamParams(learning_rate=1e-2)
TEXTS = ("<|user|>2+3<|assistant|>5", "<|user|>7+1<|assistant|>8", "<|user|>4+4<|assistant|>8")


def datum(tokens: list[int], **extra: list[float]) -> Datum:
    n = len(tokens) - 1
    inputs = {
        "target_tokens": TensorData.from_list(tokens[1:], "int64"),
        "weights": TensorData.from_list([1.0] * n, "float32"),
        **{k: TensorData.from_list(v, "float32") for k, v in extra.items()},
    }
    return Datum(ModelInput.from_ints(tokens[:-1]), inputs)


def pair_loss(data: list[Datum], logprobs: list[Any]) -> tuple[Any, dict[str, float]]:
    import torch

    sums = torch.stack([lp.sum() for lp in logprobs])
    return -torch.nn.functional.logsigmoid(0.1 * (sums[0::2] - sums[1::2])).sum(), {}


def check_family(family: str, folder: Path, device: str, dtype: str, scratch: Path) -> str:
    import torch

    settings = {"model_name": str(folder), "lora_rank": 4, "device": device, "dtype": dtype}
    client = create_training_client(**settings, max_tokens_per_microbatch=32)
    tok = client.get_tokenizer()
    encode = lambda text: list(tok.encode(text, add_special_tokens=False))  # noqa: E731
    tol = 1e-4 if dtype == "float32" else 5e-2
    try:
        data = [datum(encode(t)) for t in TEXTS]
        losses = []
        for _ in range(3):
            losses.append(client.forward_backward(data).result().metrics["loss:sum"])
            client.optim_step(STEP).result()
        assert max(losses[1:]) < losses[0], f"loss did not fall: {losses}"
        client.forward_backward_custom(data + data[:1], pair_loss).result()
        client.optim_step(STEP).result()
        prompt = encode("<|user|>3+4<|assistant|>")
        sampler = client.sampling_client()
        params = SamplingParams(max_tokens=6, temperature=1.0, seed=0)
        seqs = sampler.sample(ModelInput.from_ints(prompt), 4, params).result().sequences
        sampler.close()
        rows = [datum(prompt + list(s.tokens)) for s in seqs]
        scored = client.forward(rows).result().loss_fn_outputs
        worst = max(
            abs(a - b)
            for s, r in zip(seqs, scored, strict=True)
            for a, b in zip(s.logprobs, r["logprobs"].data[len(prompt) - 1 :], strict=True)
        )
        assert worst < 10 * tol, f"sampled log-probs differ from the forward by {worst}"
        client.save_state(scratch / "a").result()
        other = create_training_client(**settings)
        other.load_state(scratch / "a").result()
        other.save_state(scratch / "b").result()
        other.close()
        for f in sorted((scratch / "a").iterdir()):
            assert f.read_bytes() == (scratch / "b" / f.name).read_bytes(), f"{f.name} differs"
        client.save_weights_for_sampler(scratch / "adapter").result()
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = PeftModel.from_pretrained(base, str(scratch / "adapter")).to(device).eval()
        tokens = encode(TEXTS[0] + TEXTS[1])
        with torch.no_grad():
            logits = plain(input_ids=torch.tensor([tokens], device=device)).logits[0, :-1].float()
        ids = torch.tensor(tokens[1:], device=device)[:, None]
        want = torch.log_softmax(logits, -1).gather(-1, ids)[:, 0].cpu()
        got = torch.tensor(
            client.forward([datum(tokens)]).result().loss_fn_outputs[0]["logprobs"].data
        )
        gap = float((got - want).abs().max())
        assert gap < tol * 10, f"exported adapter's log-probs differ by {gap}"
        fell = f"{losses[0]:.2f} -> {losses[-1]:.2f}"
        return f"ok (loss {fell}, sample gap {worst:.1e}, export gap {gap:.1e})"
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--families", default=",".join(sorted(FAMILIES)))
    args = parser.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            folder = write_family(family, Path(tmp) / family)
            for dtype in ("float32", "bfloat16"):
                scratch = Path(tmp) / f"{family}-{dtype}"
                scratch.mkdir()
                start = time.perf_counter()
                try:
                    outcome = check_family(family, folder, args.device, dtype, scratch)
                except Exception as exc:  # report every family, then fail
                    failures += 1
                    outcome = f"FAILED {type(exc).__name__}: {exc}"
                    traceback.print_exc(file=sys.stderr)
                took = time.perf_counter() - start
                print(f"{family:12s} {dtype:9s} {outcome} [{took:.1f} s]", flush=True)
    print(f"matrix: {failures} failure(s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
