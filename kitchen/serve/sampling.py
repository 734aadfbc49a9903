"""Samplers: a sampling session names weights on disk; samples are futures like the rest.

Sampling changes no model, so nothing about it is logged: a sampler is rebuilt from its
adapter folder whenever it is needed (after a restart too), and a sample whose future was
lost to a restart answers 410, which makes the SDK send the sample again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any

from kitchen.errors import KitchenError
from kitchen.ports import SamplingClient, ServingClient
from kitchen.serve import schemas
from kitchen.serve.backend import wait
from kitchen.serve.errors import ApiError, bad_request
from kitchen.serve.futures import FutureTable, Result
from kitchen.serve.model import failed
from kitchen.serve.scheduling import FairGate
from kitchen.types import ModelInput, SamplingParams

log = logging.getLogger("kitchen.serve")
CACHE = 8


class SamplerPool:
    def __init__(
        self, futures: FutureTable, backend: ServingClient, gate: FairGate | None = None
    ) -> None:
        self.futures = futures
        self.backend = backend
        self.gate = FairGate() if gate is None else gate
        self.pending: dict[str, int] = {}  # samples queued or running, per key
        self._cache: OrderedDict[tuple[Any, ...], SamplingClient] = OrderedDict()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def client(
        self,
        base_model: str,
        rank: int = 1,
        switches: tuple[bool, bool] = (True, True),
        adapter: Path | None = None,
    ) -> SamplingClient:
        """A sampler on ``base_model`` plus the adapter in ``adapter`` (none: the base model),
        of a LoRA of that rank and (train_attn, train_mlp) switches."""
        key = (base_model, rank, switches, str(adapter) if adapter else None)
        async with self._lock:
            found = self._cache.get(key)
            if found is None:
                found = await asyncio.to_thread(
                    lambda: self.backend.create_served_sampling_client(
                        base_model,
                        rank,
                        train_attn=switches[0],
                        train_mlp=switches[1],
                        adapter_dir=adapter,
                    )
                )
                self._cache[key] = found
                while len(self._cache) > CACHE:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(key)
            return found

    def submit(
        self,
        owner: str,
        sampler: SamplingClient,
        req: schemas.SampleRequest,
        eos: int | None,
        weights: str | None = None,
    ) -> tuple[str, list[str]]:
        """Queue one sample request; its future resolves to a protobuf SampleResponse. It
        waits its turn in the fair gate as the sampled weights' (``weights``: the
        tinker:// path, None for the base model)."""
        rid = f"sample:{secrets.token_hex(12)}"
        self.futures.create(rid, owner)
        prompt = ModelInput.from_ints([t for c in req.prompt.chunks for t in c.tokens])
        params = to_params(req.sampling_params, eos)
        self.pending[owner] = self.pending.get(owner, 0) + 1
        lane = weights or "base"
        task = asyncio.create_task(self._sample(rid, owner, lane, sampler, prompt, req, params))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return rid, [f"{rid}:{i}" for i in range(req.num_samples)]

    async def _sample(
        self,
        rid: str,
        owner: str,
        lane: str,
        sampler: SamplingClient,
        prompt: ModelInput,
        req: schemas.SampleRequest,
        params: SamplingParams,
    ) -> None:
        from kitchen.serve import wire

        try:
            async with self.gate.turn(owner, lane):
                resp = await wait(sampler.sample(prompt, req.num_samples, params))
                logprobs = None
                if req.prompt_logprobs:
                    logprobs = await wait(sampler.compute_logprobs(prompt))
            result = Result(wire.encode_sample(resp, logprobs), "application/x-protobuf")
        except (KitchenError, ApiError) as exc:
            result = failed(str(exc))
        except Exception as exc:
            log.exception("sample %s failed", rid)
            result = failed(f"{type(exc).__name__}: {exc}", "server")
        finally:
            self.pending[owner] -= 1
        self.futures.resolve(rid, result)


def to_params(p: schemas.SamplingParams, eos: int | None) -> SamplingParams:
    """tinker's stop=None means "stop at end of sequence"; [] means never stop early."""
    stop: tuple[str, ...] | tuple[int, ...]
    if p.stop is None:
        stop = (eos,) if eos is not None else ()
    elif isinstance(p.stop, str):
        stop = (p.stop,)
    elif all(isinstance(s, str) for s in p.stop):
        stop = tuple(str(s) for s in p.stop)
    else:
        stop = tuple(int(s) for s in p.stop)
    return SamplingParams(
        max_tokens=64 if p.max_tokens is None else p.max_tokens,
        temperature=p.temperature,
        top_p=p.top_p,
        top_k=p.top_k,
        stop=stop,
        seed=p.seed,
    )


def check_request(
    req: schemas.SampleRequest, max_samples: int, max_tokens: int, vocab: int
) -> None:
    if req.num_samples > max_samples:
        raise bad_request(f"num_samples is at most {max_samples} here")
    if (req.sampling_params.max_tokens or 64) > max_tokens:
        raise bad_request(f"max_tokens is at most {max_tokens} here")
    if req.topk_prompt_logprobs or req.topk_sample_logprobs or req.prompt_alt_tokens_k:
        raise bad_request("top-k logprobs and prompt_alt_tokens are not supported by kitchen serve")
    if req.prompt_logprobs_last_n is not None:
        raise bad_request("prompt_logprobs_last_n is not supported by kitchen serve")
    tokens = [t for c in req.prompt.chunks for t in c.tokens]
    if not tokens:
        raise bad_request("the prompt is empty: give it at least one token")
    if len(tokens) > 100_000:
        raise bad_request("the prompt is too long")
    if max(tokens) >= vocab:
        raise bad_request(f"the prompt holds token ids outside the vocabulary [0, {vocab})")
    stop = req.sampling_params.stop
    if isinstance(stop, list) and stop and isinstance(stop[0], int) and max(stop) >= vocab:
        raise bad_request("stop holds token ids outside the vocabulary")
    if len(req.prompt.chunks) and req.sampling_params.top_k == 0:
        raise bad_request("top_k must be -1 (off) or at least 1")
