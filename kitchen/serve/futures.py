"""Futures: what a request id resolves to, held for long-polling ``retrieve_future``.

Every accepted request gets an entry at once; the model's executor (or a sampling task)
resolves it. Entries live on the event loop's thread only. A result is kept a while after it
was retrieved (a client whose connection dropped asks again), and the results not yet
retrieved when a checkpoint is taken are saved with it, so a restart that rebuilds from that
checkpoint can still answer them.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

KEEP_AFTER_RETRIEVAL_S = 300.0


@dataclass(frozen=True, slots=True)
class Result:
    body: bytes
    content_type: str = "application/json"
    failed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "body": base64.b64encode(self.body).decode(),
            "content_type": self.content_type,
            "failed": self.failed,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Result:
        return cls(base64.b64decode(value["body"]), value["content_type"], bool(value["failed"]))


@dataclass(slots=True)
class Entry:
    owner: str
    model_id: str | None
    future: asyncio.Future[Result]
    retrieved: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class FutureTable:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def create(self, request_id: str, owner: str, model_id: str | None = None) -> Entry:
        existing = self._entries.get(request_id)
        if existing is not None:
            return existing
        loop = asyncio.get_running_loop()
        entry = Entry(owner, model_id, loop.create_future())
        self._entries[request_id] = entry
        return entry

    def get(self, request_id: str) -> Entry | None:
        return self._entries.get(request_id)

    def resolve(self, request_id: str, result: Result) -> None:
        entry = self._entries.get(request_id)
        if entry is not None and not entry.future.done():
            entry.future.set_result(result)

    def mark_retrieved(self, request_id: str) -> None:
        entry = self._entries.get(request_id)
        if entry is None or entry.retrieved:
            return
        entry.retrieved = True
        loop = asyncio.get_running_loop()
        loop.call_later(KEEP_AFTER_RETRIEVAL_S, self._entries.pop, request_id, None)

    def unretrieved(self, model_id: str) -> dict[str, Result]:
        """Done but not yet retrieved results of one model (saved with its checkpoints)."""
        return {
            rid: e.future.result()
            for rid, e in self._entries.items()
            if e.model_id == model_id and not e.retrieved and e.future.done()
        }
