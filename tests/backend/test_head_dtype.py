"""The chunked output head of a bfloat16 base on a CPU computes in float32: its log-probs and
the gradient it hands the decoder are those of the float32 computation on the same (bfloat16)
weights and hidden states, chunk by chunk as in one piece."""

from __future__ import annotations

import torch

from kitchen.adapters.local_torch import head


def test_a_bfloat16_head_on_cpu_computes_in_float32() -> None:
    gen = torch.Generator().manual_seed(0)
    vocab, width, n = 1000, 16, 12
    weight = torch.randn(vocab, width, generator=gen).to(torch.bfloat16)
    hidden = torch.randn(n, width, generator=gen).to(torch.bfloat16).requires_grad_(True)
    targets = torch.randint(0, vocab, (n,), generator=gen)
    h = head.Head(None, weight, None)

    got = head.target_logprobs(h, hidden, targets)  # one chunk
    rows = head.CHUNK_ELEMENTS
    try:
        head.CHUNK_ELEMENTS = 4 * vocab
        chunked = head.target_logprobs(h, hidden, targets)
    finally:
        head.CHUNK_ELEMENTS = rows
    (grad,) = torch.autograd.grad(chunked.sum(), hidden)

    reference = hidden.detach().float().requires_grad_(True)
    logprobs = torch.log_softmax(reference @ weight.float().T, dim=-1)
    expected = logprobs.gather(-1, targets[:, None]).squeeze(1)
    (expected_grad,) = torch.autograd.grad(expected.sum(), reference)

    assert got.dtype == chunked.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked, expected, rtol=1e-5, atol=1e-5)
    assert grad.dtype == torch.bfloat16  # handed back in the decoder's dtype
    torch.testing.assert_close(grad.float(), expected_grad.to(torch.bfloat16).float())
