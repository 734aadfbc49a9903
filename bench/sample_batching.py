"""Would batching different sample calls change their results? The check behind kitchen
serve's rule of batching identical sample calls only.

Samples calls on the embedded model two ways on the local backend: each alone (``sample``),
and all in one batch of rows of the same length (no padding), each call drawing from a
generator of its own seeded as it is alone, so the only difference is the batch. Prints,
per call, whether tokens and logprobs came back bit for bit and the largest logprob change.

    python bench/sample_batching.py [--threads 1]
"""

from __future__ import annotations

import argparse
import os

CASES = [[1, 1], [2, 2], [3, 5], [1, 4], [4, 4], [4, 8], [8, 8, 8], [16, 16]]


def batched(sampler, calls):  # type: ignore[no-untyped-def]
    """The calls in one batch; call i's rows draw from a generator seeded as alone."""
    import torch

    from kitchen.adapters.local_torch.decode import StopRule, generate
    from kitchen.types import SampleResponse

    model, tokenizer = sampler._model, sampler._tokenizer
    params = calls[0][2]
    rows = [prompt.to_ints() for prompt, n, _ in calls for _ in range(n)]
    gens = [torch.Generator().manual_seed(p.seed) for _, _, p in calls]
    counts = [n for _, n, _ in calls]
    from kitchen.adapters.local_torch import decode

    real = decode.choose

    def choose(logits, p, generator):  # type: ignore[no-untyped-def]
        out, start = [], 0
        for count, g in zip(counts, gens, strict=True):
            out.append(real(logits[start : start + count], p, g))
            start += count
        return torch.cat([c for c, _ in out]), torch.cat([lp for _, lp in out])

    decode.choose = choose
    try:
        seqs = generate(model, rows, params, StopRule.from_params(params, tokenizer), gens[0])
    finally:
        decode.choose = real
    out, start = [], 0
    for n in counts:
        out.append(SampleResponse(tuple(seqs[start : start + n])))
        start += n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from kitchen.adapters.local_torch.service import LocalServiceClient
    from kitchen.types import ModelInput, SamplingParams

    sampler = LocalServiceClient().create_served_sampling_client("kitchen/tiny", 4)
    print(f"torch threads: {args.threads}")
    print("samples per call | prompt length | calls equal alone and batched | largest |dlogprob|")
    for counts in CASES:
        for length in (4, 17):
            calls = [
                (
                    ModelInput.from_ints([(3 + 7 * i + j) % 500 + 3 for j in range(length)]),
                    n,
                    SamplingParams(max_tokens=16, temperature=1.0, seed=10 + i),
                )
                for i, n in enumerate(counts)
            ]
            alone = [sampler.sample(*c).result() for c in calls]
            together = batched(sampler, calls)
            equal = [a == b for a, b in zip(alone, together, strict=True)]
            worst = max(
                abs(x - y)
                for a, b in zip(alone, together, strict=True)
                for s, t in zip(a.sequences, b.sequences, strict=True)
                for x, y in zip(s.logprobs, t.logprobs, strict=False)
            )
            print(f"{counts} | {length} | {sum(equal)}/{len(equal)} | {worst:.2e}")


if __name__ == "__main__":
    main()
