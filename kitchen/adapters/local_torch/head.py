"""Target log-probabilities without a full-vocabulary log-softmax.

With a real vocabulary the output head dominates memory: 4,096 tokens × 151,936 logits are
2.5 GB in float32, and autograd keeps them (and their log-softmax) for the backward. So, where
the logits of a call would be large, the decoder's hidden states go through the head a chunk
of positions at a time: each chunk's logits give ``target − logsumexp`` and, when a gradient
is wanted, that position's derivative with respect to its hidden state,
``(onehot(target) − softmax) · W``, a [positions, hidden] tensor that is all the backward
needs. Nothing of vocabulary size outlives its chunk.

Small calls (the embedded tiny model's, whose vocabulary is 262) keep the model's own logits
and ``cross_entropy``: the same bytes as before this path existed. The split is decided from
the call's shape alone, so the same call always takes the same path.

Only architectures whose causal-LM head is a plain bias-free ``Linear`` (optionally soft-capped,
as Gemma's) are given the chunked path; any other model keeps its own forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

CHUNK_ELEMENTS = 1 << 25
"""Logits per chunk (128 MiB in float32); also the largest call that keeps the full logits."""

CHUNKED_HEAD_TYPES = frozenset(
    {
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "qwen3_moe",
        "gemma3_text",
        "phi3",
    }
)
"""Model types whose ``ForCausalLM.forward`` is ``softcap(lm_head(decoder(...)))`` and nothing
more; each is in the backend's architecture test matrix."""


@dataclass(frozen=True, slots=True)
class Head:
    decoder: Any
    weight: torch.Tensor
    softcap: float | None


def head_of(model: Any) -> Head | None:
    """The decoder and output weight to chunk through, or None to keep the model's forward."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in CHUNKED_HEAD_TYPES:
        return None
    head = base.get_output_embeddings()
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    if type(head) is not torch.nn.Linear or head.bias is not None or decoder is None:
        return None  # e.g. LoRA on the head itself: its own forward is the only right one
    if head.weight.requires_grad:
        return None
    softcap = getattr(config, "final_logit_softcapping", None)
    return Head(decoder, head.weight, float(softcap) if softcap else None)


def wants_chunks(positions: int, vocab: int) -> bool:
    return positions * vocab > CHUNK_ELEMENTS


def hidden_states(head: Head, input_ids: torch.Tensor, attention_mask: Any) -> torch.Tensor:
    out = head.decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    hidden: torch.Tensor = out.last_hidden_state
    return hidden


def target_logprobs(head: Head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(targets[i] | hidden[i]) for hidden [N, H] and targets [N], float32 [N]."""
    import torch

    rows = max(1, CHUNK_ELEMENTS // int(head.weight.shape[0]))
    if torch.is_grad_enabled() and hidden.requires_grad:
        out: torch.Tensor = _ChunkedTargetLogprobs.apply(hidden, head.weight, targets, head, rows)
        return out
    with torch.no_grad():
        return _chunks(hidden, head, targets, rows, want_grad=False)[0]


def _chunks(
    hidden: torch.Tensor, head: Head, targets: torch.Tensor, rows: int, *, want_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    import torch

    n = hidden.shape[0]
    weight = head.weight
    if weight.device.type == "cpu" and weight.dtype != torch.float32:
        # A CPU without bfloat16 matrix units runs these [rows x vocabulary] products in
        # bfloat16 tens of times slower than in float32 (bench/README.md, "Speed beside TRL's
        # SFTTrainer"): the head computes in float32 there, from one copy of its weight a call.
        weight = weight.float()
    out = torch.empty(n, dtype=torch.float32, device=hidden.device)
    grad = (
        torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if want_grad else None
    )
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        z = (hidden[start:stop].to(weight.dtype) @ weight.T).float()
        if head.softcap is not None:
            capped = torch.tanh(z / head.softcap)
            logits = capped * head.softcap
        else:
            logits = z
        del z
        picked = targets[start:stop, None]
        lse = torch.logsumexp(logits, dim=-1)
        out[start:stop] = logits.gather(-1, picked).squeeze(1) - lse
        if grad is not None:
            # d log p(t) / d logits = onehot(t) - softmax, built in place over the logits.
            probs = logits.sub_(lse[:, None]).exp_().neg_()
            probs.scatter_add_(-1, picked, torch.ones_like(picked, dtype=probs.dtype))
            if head.softcap is not None:
                probs.mul_(1.0 - capped * capped)
            grad[start:stop] = (probs.to(weight.dtype) @ weight).float()
        del logits
    return out, grad


class _ChunkedTargetLogprobs:
    """An autograd function made on first use, so importing this module never loads torch."""

    _fn: Any = None

    @classmethod
    def apply(cls, hidden: Any, weight: Any, targets: Any, head: Head, rows: int) -> Any:
        if cls._fn is None:
            cls._fn = _make_function()
        return cls._fn.apply(hidden, weight, targets, head, rows)


def _make_function() -> Any:
    import torch

    class ChunkedTargetLogprobs(torch.autograd.Function):
        @staticmethod
        def forward(
            ctx: Any,
            hidden: torch.Tensor,
            weight: torch.Tensor,
            targets: torch.Tensor,
            head: Head,
            rows: int,
        ) -> torch.Tensor:
            out, grad = _chunks(hidden, head, targets, rows, want_grad=True)
            ctx.save_for_backward(grad)
            ctx.hidden_dtype = hidden.dtype
            return out

        @staticmethod
        def backward(ctx: Any, upstream: torch.Tensor) -> tuple[Any, ...]:
            (grad,) = ctx.saved_tensors
            return (upstream[:, None] * grad).to(ctx.hidden_dtype), None, None, None, None

    return ChunkedTargetLogprobs
