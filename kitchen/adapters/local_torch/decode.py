"""The generation loop: left-padded prompts, one KV cache, one forward per new token.

Prompts are padded on the left so every row's next token sits in the last column; explicit
position ids keep each row's positions starting at 0 whatever its padding. Rows that have
stopped keep riding along (their tokens are ignored) so the cache never has to be reshaped.

The logprob reported for a token is log p(token | prefix) under the model itself, before
temperature, top-k or top-p: the same quantity ``compute_logprobs`` and the trainer's
``logprobs`` output report, so an importance ratio is exactly comparable.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kitchen.adapters.local_torch import head
from kitchen.errors import ConfigError
from kitchen.types import SampledSequence, SamplingParams, StopReason

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True, slots=True)
class StopRule:
    """When a sequence ends: a stop token id was sampled, or the text now holds a stop string."""

    token_ids: frozenset[int]
    strings: tuple[str, ...]
    tokenizer: Any

    @classmethod
    def from_params(cls, params: SamplingParams, tokenizer: Any) -> StopRule:
        stop = params.stop or ()
        if all(isinstance(s, str) for s in stop):
            strings = tuple(str(s) for s in stop)
            if "" in strings:
                raise ConfigError("stop holds an empty string, which would stop at once: drop it")
            return cls(frozenset(), strings, tokenizer)
        if all(isinstance(s, int) for s in stop):
            return cls(frozenset(int(s) for s in stop), (), tokenizer)
        raise ConfigError("stop mixes strings and token ids: pass one kind")

    def hit(self, tokens: list[int]) -> bool:
        if tokens[-1] in self.token_ids:
            return True
        if not self.strings:
            return False
        text = self.tokenizer.decode(tokens)
        return any(s in text for s in self.strings)


def check_params(params: SamplingParams) -> None:
    if params.max_tokens < 0:
        raise ConfigError(f"max_tokens must be >= 0, got {params.max_tokens}")
    if params.temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {params.temperature}")
    if not 0.0 < params.top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1], got {params.top_p}")
    if params.top_k == 0 or params.top_k < -1:
        raise ConfigError(f"top_k must be -1 (off) or at least 1, got {params.top_k}")


def cache_keyword(model: torch.nn.Module) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache``; speak whichever the model takes."""
    get_base: Any = getattr(model, "get_base_model", None)
    base = get_base() if get_base is not None else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    params: SamplingParams,
    stop: StopRule,
    generator: torch.Generator,
) -> list[SampledSequence]:
    """Extend every prompt by at most ``max_tokens`` tokens, all rows in one batch."""
    import torch

    device = next(model.parameters()).device
    ids, mask = _left_pad(prompts, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    keyword = cache_keyword(model)
    rows = [_Row() for _ in prompts]
    cache: Any = None
    step_ids, step_pos = ids, positions
    with torch.inference_mode():
        for _ in range(params.max_tokens):
            out = model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                use_cache=True,
                logits_to_keep=1,
                **{keyword: cache},
            )
            cache = getattr(out, keyword)
            chosen, logprobs = choose(out.logits[:, -1], params, generator)
            for row, token, logprob in zip(rows, chosen.tolist(), logprobs.tolist(), strict=True):
                row.take(token, logprob, stop)
            if all(row.done for row in rows):
                break
            step_ids, step_pos = chosen[:, None], step_pos[:, -1:] + 1
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
    return [row.result() for row in rows]


class _Row:
    __slots__ = ("done", "logprobs", "reason", "tokens")

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self.done = False
        self.reason: StopReason = "length"

    def take(self, token: int, logprob: float, stop: StopRule) -> None:
        if self.done:
            return
        self.tokens.append(token)
        self.logprobs.append(logprob)
        if stop.hit(self.tokens):
            self.done, self.reason = True, "stop"

    def result(self) -> SampledSequence:
        return SampledSequence(tuple(self.tokens), tuple(self.logprobs), self.reason)


def _left_pad(
    prompts: Sequence[Sequence[int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.int64)
    mask = torch.zeros(len(prompts), width, dtype=torch.int64)
    for i, prompt in enumerate(prompts):
        if prompt:
            ids[i, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.int64)
            mask[i, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def choose(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row; return it and its logprob under the unmodified model."""
    import torch

    logits = logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    if params.temperature == 0:
        chosen = logprobs.argmax(dim=-1)
    else:
        probs = torch.softmax(_filter(logits / params.temperature, params), dim=-1)
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return chosen, logprobs.gather(-1, chosen[:, None]).squeeze(1)


def _filter(scores: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Mask tokens outside top-k, then outside the top-p nucleus (the best token always stays)."""
    import torch

    if 0 < params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        ordered, order = torch.sort(scores, dim=-1, descending=True, stable=True)
        probs = torch.softmax(ordered, dim=-1)
        outside = (probs.cumsum(dim=-1) - probs) > params.top_p
        scores = scores.scatter(-1, order, ordered.masked_fill(outside, float("-inf")))
    return scores


def prompt_logprobs(
    model: torch.nn.Module, tokens: Sequence[int], vocab_size: int | None = None
) -> list[float | None]:
    """``None`` for the first token, then log p(token_i | tokens_<i).

    A long prompt on a large vocabulary goes through the output head in chunks (``head``),
    never holding the whole prompt's logits; a short one keeps the model's own logits.
    """
    import torch

    if not tokens:
        raise ConfigError("compute_logprobs needs a prompt with at least one token")
    device = next(model.parameters()).device
    ids = torch.tensor([list(tokens)], dtype=torch.int64, device=device)
    chunked = head.head_of(model)
    hf_model: Any = model  # a transformers model: torch's Module type does not know its methods
    vocab = vocab_size or int(hf_model.get_input_embeddings().num_embeddings)
    with torch.inference_mode():
        if chunked is not None and head.wants_chunks(len(tokens), vocab):
            hidden = head.hidden_states(chunked, ids, None)[0, :-1]
            picked = head.target_logprobs(chunked, hidden, ids[0, 1:])
        else:
            logits = model(input_ids=ids).logits[0, :-1].float()
            picked = torch.log_softmax(logits, dim=-1).gather(-1, ids[0, 1:, None]).squeeze(1)
    return [None, *picked.tolist()]
