"""What the server asks of its backend, and waiting for the backend's futures.

The backend is a :class:`kitchen.ports.ServingClient` handed to the app by whoever started it
(``kitchen serve`` picks the local torch backend): served models and samplers are made by its
``create_served_*`` methods, with tinker's LoRA switches (``train_attn``, ``train_mlp``).
``train_unembed`` is recorded with the model and not passed on: the local backend never
adapts the output head (on a model with tied embeddings, as the embedded one is, adapting the
head would also move the input embeddings). A sampler is always built from an adapter folder
on disk, so one code path serves a fresh sampler and one rebuilt after a restart, bit for
bit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TypeVar

from kitchen.serve.errors import bad_request
from kitchen.types import Future

T = TypeVar("T")


async def wait(future: Future[T]) -> T:
    """Await a backend future without blocking the loop: a concurrent.futures.Future (what the
    local backend returns) is awaited as it is, any other is waited for on a worker thread."""
    if isinstance(future, concurrent.futures.Future):
        return await asyncio.wrap_future(future)
    return await asyncio.to_thread(future.result)


def check_switches(train_attn: bool, train_mlp: bool) -> None:
    """Refuse a LoRA with neither switch on before the model is put on record."""
    if not (train_attn or train_mlp):
        raise bad_request(
            "train_attn and train_mlp are both off: LoRA on the head alone is not supported"
        )
