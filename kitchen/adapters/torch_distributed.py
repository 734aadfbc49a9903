"""The ``Collectives`` port on ``torch.distributed``, in a process that ``torchrun`` started.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (and
``TORCHELASTIC_RESTART_COUNT``) for each worker; ``from_env`` joins that group with gloo (CPU)
or NCCL (a CUDA device), the transport everyone in the field already runs. Objects (the
engine's messages, a checkpoint's files, log-probs) always travel on gloo channels; gradients
are summed on the group's own backend. Every operation waits at most ``KITCHEN_DIST_TIMEOUT_S``
(default 600 s) for its peers: a peer that died or hangs raises ``PeerLost``, a fault outside
the run, so the attempt ends resumable (exit 75) instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from kitchen.errors import PeerLost


def timeout_s() -> float:
    """``KITCHEN_DIST_TIMEOUT_S`` (refused in one line when it is not a positive number)."""
    from kitchen.settings import current

    return float(current().dist_timeout_s)


def world_size_from_env() -> int:
    """The number of processes ``torchrun`` started (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def restart_count() -> int:
    """How many times torchrun restarted this group (0 on its first start, outside torchrun)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


class TorchCollectives:
    """One channel of a ``torch.distributed`` group: a gloo group for objects and one on the
    group's backend for tensors, both private to this channel (see ``split``)."""

    def __init__(self, backend: str, timeout: float, device: Any = None) -> None:
        import torch.distributed as dist

        self._dist = dist
        self._timeout = timeout
        self._device = device
        self._backend = backend
        span = timedelta(seconds=timeout)
        with self._guard("joining a channel"):
            self._objects = dist.new_group(backend="gloo", timeout=span)
            self._tensors = (
                self._objects
                if backend == "gloo"
                else dist.new_group(backend=backend, timeout=span)
            )

    @property
    def rank(self) -> int:
        return int(self._dist.get_rank())

    @property
    def world_size(self) -> int:
        return int(self._dist.get_world_size())

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def tensor_group(self) -> Any:
        """This channel's process group for tensors (FSDP shards the base model over it)."""
        return self._tensors

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except RuntimeError as exc:  # gloo and NCCL timeouts, a closed connection to a peer
            global _lost
            _lost = True
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PeerLost(
                f"rank {self.rank}: another process of the run is gone or did not answer "
                f"while {what} (timeout {self._timeout:g} s: {first[:160]}); the attempt ends "
                "resumable"
            ) from exc

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        box = [obj]
        with self._guard("receiving rank 0's next step" if self.rank != src else "broadcasting"):
            self._dist.broadcast_object_list(box, src=src, group=self._objects)
        return box[0]

    def all_gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        with self._guard("gathering results"):
            self._dist.all_gather_object(out, obj, group=self._objects)
        return out

    def all_reduce_sum(self, tensors: Sequence[Any]) -> None:
        """One all-reduce over the tensors flattened together (one message, not one each)."""
        import torch

        if not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        with self._guard("summing gradients"):
            self._dist.all_reduce(flat, op=self._dist.ReduceOp.SUM, group=self._tensors)
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n

    def barrier(self) -> None:
        with self._guard("waiting at a barrier"):
            self._dist.barrier(group=self._objects)

    def split(self) -> TorchCollectives:
        return TorchCollectives(self._backend, self._timeout, self._device)


def _store(timeout: float) -> Any:
    """The group's key-value store, under a prefix of its own for each start of the group.

    torchrun's agent may host one store for all its restarts (``--standalone``, the c10d
    rendezvous); its keys from an earlier start (the peers' addresses) would then be read by
    the restarted workers, which would try to connect to processes that are gone."""
    import torch.distributed as dist

    agent_hosts_it = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        host_name=os.environ.get("MASTER_ADDR", "127.0.0.1"),
        port=int(os.environ.get("MASTER_PORT", "29500")),
        world_size=world_size_from_env(),
        is_master=not agent_hosts_it and os.environ.get("RANK") == "0",
        timeout=timedelta(seconds=timeout),
        multi_tenant=True,
    )
    return dist.PrefixStore(f"kitchen/start-{restart_count()}", store)


def from_env() -> TorchCollectives | None:
    """Join the group torchrun started, or None when this process runs alone."""
    if world_size_from_env() <= 1:
        return None
    import torch
    import torch.distributed as dist

    timeout = timeout_s()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    device = None
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        try:
            dist.init_process_group(
                backend=backend,
                store=_store(timeout),
                rank=int(os.environ["RANK"]),
                world_size=world_size_from_env(),
                timeout=timedelta(seconds=timeout),
            )
        except (RuntimeError, ValueError) as exc:
            raise PeerLost(
                f"could not join the other processes of the run within {timeout:g} s: {exc}"
            ) from exc
    return TorchCollectives(backend, timeout, device)


_lost = False  # a peer was lost: the group cannot be torn down cleanly


def leave() -> None:
    """Leave the group (at exit), so torch does not warn about a group never destroyed."""
    import torch.distributed as dist

    if dist.is_initialized() and not _lost:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def peer_lost() -> bool:
    """Whether a collective of this process met a peer that is gone."""
    return _lost


def exit_now(code: int) -> None:
    """End the process with ``code`` at once (output flushed): after a peer was lost, gloo's
    background threads would abort the interpreter's normal exit (SIGABRT)."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
