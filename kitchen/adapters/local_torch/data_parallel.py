"""Data parallelism for the local training client: one run on several processes.

Every process holds the whole model and the same LoRA and optimizer state. A call's data is
the *global* batch, the same on every process; each takes a contiguous share of it
(``share``: ⌊n/W⌋ or ⌈n/W⌉ examples, the earlier ranks the larger shares, none when there are
fewer examples than processes), runs it in its own micro-batches, and the per-datum outputs and
``:sum`` metrics are gathered back into the global batch's order, so the caller sees what one
process would have returned. Gradients are summed across processes before the optimizer step.
Losses are sums over tokens (tinker's definitions), so the split changes only the order of a
float sum: two runs on the same number of processes agree bit for bit, and a run on another
number agrees within float summation error.

A state folder to load comes from rank 0's disk (``from_rank0``), so the other processes need
no shared filesystem for it; after each save every process compares a digest of its weights
and optimizer state with rank 0's (``check_same_state``).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.errors import RanksDiverged
from kitchen.ports import Collectives
from kitchen.types import Datum, ForwardBackwardOutput, TensorData

if TYPE_CHECKING:  # pragma: no cover
    import torch

SUMMED = ":sum"


def share(n: int, rank: int, world: int) -> tuple[int, int]:
    """The slice ``[lo, hi)`` of ``n`` examples that ``rank`` of ``world`` takes."""
    return n * rank // world, n * (rank + 1) // world


def split_call(
    collectives: Collectives,
    data: list[Datum],
    run: Callable[[list[Datum]], ForwardBackwardOutput],
) -> ForwardBackwardOutput:
    """``run`` on this process's share of ``data``; the outputs of all shares, in order."""
    lo, hi = share(len(data), collectives.rank, collectives.world_size)
    mine = run(data[lo:hi]) if hi > lo else ForwardBackwardOutput((), {"loss:sum": 0.0})
    parts: list[tuple[tuple[dict[str, TensorData], ...], dict[str, float]]] = (
        collectives.all_gather((mine.loss_fn_outputs, mine.metrics))
    )
    outputs = tuple(out for part, _ in parts for out in part)
    metrics: dict[str, float] = {}
    for _, part_metrics in parts:
        for key, value in part_metrics.items():
            if key.endswith(SUMMED):
                metrics[key] = metrics.get(key, 0.0) + float(value)
            else:
                metrics.setdefault(key, float(value))
    return ForwardBackwardOutput(outputs, metrics)


def sum_gradients(collectives: Collectives, params: Sequence[torch.nn.Parameter]) -> None:
    """Every parameter's gradient becomes its sum over the processes (zeros where a process
    had no data), the same bits on each."""
    import torch

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    collectives.all_reduce_sum([p.grad for p in params if p.grad is not None])


def from_rank0(collectives: Collectives, folder: Path) -> tuple[Path, Any]:
    """``folder`` as rank 0 has it: rank 0 reads it, the others receive its files into a
    temporary folder. Returns the folder to load and what to clean up afterwards (or None)."""
    files: dict[str, bytes] | None = None
    if collectives.rank == 0:
        files = (
            {
                str(p.relative_to(folder)): p.read_bytes()
                for p in sorted(folder.rglob("*"))
                if p.is_file()
            }
            if folder.is_dir()
            else {}
        )
    files = collectives.broadcast(files)
    if collectives.rank == 0:
        return folder, None
    scratch = tempfile.TemporaryDirectory(prefix="kitchen-rank-state-")
    root = Path(scratch.name) / folder.name
    if not files:  # rank 0 has no such folder: let the load fail here as it fails there
        return root, scratch
    for rel, data in (files or {}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root, scratch


def state_digest(folder: Path) -> str:
    """sha256 of a saved state's weights and optimizer moments (its RNG and header aside)."""
    h = hashlib.sha256()
    for name in ("weights.safetensors", "optimizer.safetensors"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def check_same_state(collectives: Collectives, folder: Path, step: int) -> None:
    """Every process must hold rank 0's weights and optimizer state."""
    digests = collectives.all_gather(state_digest(folder))
    differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise RanksDiverged(
            f"at step {step} the weights or optimizer state of rank(s) "
            f"{', '.join(map(str, differ))} differ from rank 0's ({digests[0][:12]}): the "
            "processes no longer train one model (a nondeterministic kernel or a faulty device)"
        )
