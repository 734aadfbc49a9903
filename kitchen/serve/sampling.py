"""Samplers: a sampling session names weights on disk; samples are futures like the rest.

Sampling changes no model, so nothing about it is logged: a sampler is rebuilt from its
adapter folder whenever it is needed (after a restart too), and a sample whose future was
lost to a restart answers 410, which makes the SDK send the sample again.

Samples waiting for the same sampler that its backend can answer together without changing a
bit (``batch_key``: on the local backend, identical seeded or greedy calls) are run as one
batch when the first of them gets its turn; the others stop waiting for turns of their own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitchen.errors import KitchenError
from kitchen.ports import ServedSamplingClient, ServingClient
from kitchen.serve import schemas
from kitchen.serve.backend import wait
from kitchen.serve.errors import ApiError, bad_request
from kitchen.serve.futures import FutureTable, Result
from kitchen.serve.model import failed
from kitchen.serve.scheduling import FairGate
from kitchen.types import ModelInput, SamplingParams

log = logging.getLogger("kitchen.serve")
CACHE = 8
MAX_BATCH_ROWS = 64
PROTO = "application/x-protobuf"


class SamplerPool:
    def __init__(
        self, futures: FutureTable, backend: ServingClient, gate: FairGate | None = None
    ) -> None:
        self.futures = futures
        self.backend = backend
        self.gate = FairGate() if gate is None else gate
        self.pending: dict[str, int] = {}  # samples queued or running, per key
        self._cache: OrderedDict[tuple[Any, ...], ServedSamplingClient] = OrderedDict()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._open: dict[tuple[int, Hashable], list[_Job]] = {}  # batchable jobs waiting

    async def client(
        self,
        base_model: str,
        rank: int = 1,
        switches: tuple[bool, bool] = (True, True),
        adapter: Path | None = None,
    ) -> ServedSamplingClient:
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
        sampler: ServedSamplingClient,
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
        job = _Job(rid, owner, weights or "base", sampler, prompt, req, params)
        job.task = asyncio.create_task(self._sample(job))
        self._tasks.add(job.task)
        job.task.add_done_callback(self._tasks.discard)
        return rid, [f"{rid}:{i}" for i in range(req.num_samples)]

    async def _sample(self, job: _Job) -> None:
        """Run ``job`` when its turn comes, with every job waiting that can share its batch
        (same sampler and batch key); a job taken into another's batch stops waiting."""
        key = job.sampler.batch_key(job.prompt, job.req.num_samples, job.params)
        group = None if key is None else (id(job.sampler), key)
        if group is not None:
            self._open.setdefault(group, []).append(job)
        try:
            async with self.gate.turn(job.owner, job.lane):
                if job.taken:
                    return
                batch = [job] if group is None else self._take(group, job)
                await self._run(batch)
        except asyncio.CancelledError:
            if job.taken:
                return  # answered by the batch that took it
            self._leave(group, job)
            raise

    def _take(self, group: tuple[int, Hashable], leader: _Job) -> list[_Job]:
        """The leader and the jobs waiting with it, up to MAX_BATCH_ROWS rows; the jobs
        taken stop waiting for turns of their own."""
        waiting = self._open.pop(group, [])
        batch, rows, rest = [leader], leader.req.num_samples, []
        for other in waiting:
            if other is leader:
                continue
            if rows + other.req.num_samples <= MAX_BATCH_ROWS:
                batch.append(other)
                rows += other.req.num_samples
            else:
                rest.append(other)
        if rest:
            self._open[group] = rest
        for j in batch:
            j.taken = True
            if j is not leader and j.task is not None:
                j.task.cancel()
        return batch

    def _leave(self, group: tuple[int, Hashable] | None, job: _Job) -> None:
        if group is not None and job in self._open.get(group, []):
            self._open[group].remove(job)
            if not self._open[group]:
                del self._open[group]

    async def _run(self, batch: list[_Job]) -> None:
        """Sample the batch (a lone job as sent; identical jobs with one decode), then each
        job's prompt logprobs; resolve every job's future."""
        from kitchen.serve import wire

        results: dict[str, Result] = {}
        error: Result | None = None
        try:
            sampler = batch[0].sampler
            if len(batch) == 1:
                job = batch[0]
                alone = sampler.sample(job.prompt, job.req.num_samples, job.params)
                responses = [await wait(alone)]
            else:
                calls = [(j.prompt, j.req.num_samples, j.params) for j in batch]
                responses = await wait(sampler.sample_together(calls))
                log.info("%d sample requests decoded in one batch", len(batch))
            for job, resp in zip(batch, responses, strict=True):
                logprobs = None
                if job.req.prompt_logprobs:
                    logprobs = await wait(sampler.compute_logprobs(job.prompt))
                results[job.rid] = Result(wire.encode_sample(resp, logprobs), PROTO)
        except (KitchenError, ApiError) as exc:
            error = failed(str(exc))
        except Exception as exc:
            log.exception("sample %s failed", batch[0].rid)
            error = failed(f"{type(exc).__name__}: {exc}", "server")
        finally:
            for job in batch:
                self.pending[job.owner] -= 1
        for job in batch:
            self.futures.resolve(job.rid, results.get(job.rid) or error or failed("no result"))


@dataclass(slots=True, eq=False)
class _Job:
    rid: str
    owner: str
    lane: str
    sampler: ServedSamplingClient
    prompt: ModelInput
    req: schemas.SampleRequest
    params: SamplingParams
    taken: bool = False
    task: asyncio.Task[None] | None = None


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
