"""The Collectives contract (``kitchen.ports.Collectives``), written once for every transport.

``check(collectives)`` runs the contract; every rank of the group calls it at the same time
and it raises ``AssertionError`` on the rank that sees a broken promise. A single process
calls it with its one-rank implementation; several processes run this module under a
launcher, which checks the ``torch.distributed`` adapter on real processes::

    torchrun --standalone --nproc-per-node 2 -m kitchen.testing.collectives_contract

With ``--lost-peer`` the last rank leaves before the final broadcast, and every other rank
must get ``PeerLost`` within ``KITCHEN_DIST_TIMEOUT_S`` instead of waiting for ever.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from kitchen.errors import PeerLost
from kitchen.ports import Collectives


def check(c: Collectives) -> None:
    import torch

    rank, world = c.rank, c.world_size
    assert 0 <= rank < world, (rank, world)
    assert isinstance(c.backend, str) and c.backend

    # broadcast: src's object on every rank, whatever the others passed
    got = c.broadcast({"from": rank, "payload": list(range(5))} if rank == 0 else None)
    assert got == {"from": 0, "payload": [0, 1, 2, 3, 4]}, got
    last = world - 1
    got = c.broadcast(b"bytes of the last rank" if rank == last else b"", src=last)
    assert got == b"bytes of the last rank", got

    # all_gather: every rank's object, in rank order
    assert c.all_gather(("rank", rank)) == [("rank", r) for r in range(world)]

    # all_reduce_sum: in place, the sum over ranks, the same bits everywhere
    a = torch.full((3,), float(rank + 1))
    b = torch.arange(4, dtype=torch.float32).reshape(2, 2) * (rank + 1)
    c.all_reduce_sum([a, b])
    total = world * (world + 1) / 2
    assert torch.equal(a, torch.full((3,), total)), a
    assert torch.equal(b, torch.arange(4, dtype=torch.float32).reshape(2, 2) * total), b
    bits = c.all_gather(a.numpy().tobytes() + b.numpy().tobytes())
    assert all(x == bits[0] for x in bits)
    c.all_reduce_sum([])  # nothing to sum is not an error

    # split: a channel of its own over the same ranks
    other = c.split()
    assert (other.rank, other.world_size) == (rank, world)
    assert other.all_gather(rank) == list(range(world))
    c.barrier()
    other.barrier()


def check_lost_peer(c: Collectives, timeout_s: float) -> None:
    """The last rank leaves; the others' next broadcast raises PeerLost within the timeout."""
    if c.rank == c.world_size - 1:
        return
    t0 = time.monotonic()
    try:
        c.broadcast(None, src=c.world_size - 1)
    except PeerLost:
        waited = time.monotonic() - t0
        assert waited < timeout_s + 30, waited
        return
    raise AssertionError("a broadcast from a rank that left returned")


def main(argv: list[str]) -> int:
    from kitchen.adapters import torch_distributed

    c = torch_distributed.from_env()
    if c is None:
        print("run this under a launcher with several processes", file=sys.stderr)
        return 2
    try:
        check(c)
        if "--lost-peer" in argv:
            check_lost_peer(c, torch_distributed.timeout_s())
            if c.rank == c.world_size - 1:
                return 0  # leave without a goodbye: the others must not hang
        print(f"rank {c.rank}: the Collectives contract holds", flush=True)
        if "--lost-peer" in argv:
            # a group with a peer gone cannot be torn down cleanly (gloo's threads abort the
            # interpreter's exit): end here, as kitchen's own commands do after PeerLost
            torch_distributed.exit_now(0)
        return 0
    finally:
        if "--lost-peer" not in argv:
            torch_distributed.leave()


def _run() -> Any:  # pragma: no cover - module entry point
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover
    _run()
