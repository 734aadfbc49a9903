"""Who runs next, and who stays in memory: the fair gate and the resident set.

All torch work goes through the backend's one torch thread, in the order it is handed over.
:class:`FairGate` decides that order: at most ``slots`` pieces of work (a training request, a
sample, a model's load) are handed over at once, and when a slot frees up the next one is
taken round-robin over keys, and within a key round-robin over its models, so one model's
long queue, or one key's hundred samples, never starves another's work.

:class:`Residency` bounds how many served models hold their weights and optimizer state in
memory (``--max-resident-models``): a model that must run while the set is full evicts the
one idle longest (checkpointed, then unloaded); it is loaded again on its next request.
Both live on the event loop's thread only.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Protocol


class FairGate:
    def __init__(self, slots: int = 2) -> None:
        self.slots = max(1, slots)
        self.busy = 0
        self._waiting: OrderedDict[str, OrderedDict[str, deque[asyncio.Future[None]]]] = (
            OrderedDict()
        )

    @property
    def queued(self) -> int:
        """Work waiting for a slot."""
        return sum(len(q) for models in self._waiting.values() for q in models.values())

    @asynccontextmanager
    async def turn(self, key: str, model: str) -> AsyncIterator[None]:
        """Hold one slot while the block runs; wait for it in the fair order."""
        if self.busy < self.slots and not self._waiting:
            self.busy += 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, OrderedDict()).setdefault(model, deque()).append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()  # granted and abandoned at once: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self.busy -= 1
        while self._waiting and self.busy < self.slots:
            key, models = next(iter(self._waiting.items()))
            model, queue = next(iter(models.items()))
            fut = queue.popleft()
            if queue:
                models.move_to_end(model)  # the key's next turn goes to its next model
            else:
                del models[model]
            if models:
                self._waiting.move_to_end(key)  # the next slot goes to the next key
            else:
                del self._waiting[key]
            if fut.cancelled():
                continue
            self.busy += 1
            fut.set_result(None)


class Evictable(Protocol):
    @property
    def model_id(self) -> str: ...

    def evictable(self) -> bool:
        """Loaded, and not running anything right now."""
        ...

    def has_work(self) -> bool: ...

    async def unload(self) -> bool:
        """Checkpoint and release the model; False when it could not (it stays loaded)."""
        ...


class Residency:
    """The models loaded now, least recently used first; ``limit`` None: no bound."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._resident: OrderedDict[str, Evictable] = OrderedDict()
        self._changed = asyncio.Event()
        self.waiting = 0  # models waiting for a place
        self.unloads = 0

    def __len__(self) -> int:
        return len(self._resident)

    def ids(self) -> list[str]:
        return list(self._resident)

    def touch(self, model: Evictable) -> None:
        if model.model_id in self._resident:
            self._resident.move_to_end(model.model_id)
        self._changed.set()

    def drop(self, model: Evictable) -> None:
        self._resident.pop(model.model_id, None)
        self._changed.set()

    async def admit(self, model: Evictable) -> None:
        """Make room for ``model`` (evicting the model idle longest, one with no queued work
        first) and count it resident; waits while every resident model is running."""
        if model.model_id in self._resident:
            self.touch(model)
            return
        self.waiting += 1
        try:
            while self.limit is not None and len(self._resident) >= self.limit:
                victim = self._victim(model)
                if victim is None:
                    self._changed.clear()
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.25)
                    continue
                del self._resident[victim.model_id]  # its place is taken before the await
                if await victim.unload():
                    self.unloads += 1
                else:
                    self._resident[victim.model_id] = victim
                    self._resident.move_to_end(victim.model_id, last=False)
                    await asyncio.sleep(0.05)
            self._resident[model.model_id] = model
        finally:
            self.waiting -= 1

    def _victim(self, model: Evictable) -> Evictable | None:
        candidates = [m for m in self._resident.values() if m is not model and m.evictable()]
        for m in candidates:
            if not m.has_work():
                return m
        return candidates[0] if candidates else None
