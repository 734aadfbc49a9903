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

Sampling (RL's and on-policy distillation's rollouts) is shared out too: ``SplitSampler`` has
each seeded ``sample`` call computed by one process and its result gathered by all.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.errors import ConfigError, KitchenError, RanksDiverged
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
    """``run`` on this process's share of ``data`` (maybe none: it still runs, so a sharded
    model's passes stay even); the outputs of all shares, in order."""
    lo, hi = share(len(data), collectives.rank, collectives.world_size)
    mine = run(data[lo:hi])
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


def shard_base(model: Any, collectives: Collectives, device: str) -> None:
    """Shard every frozen base layer that LoRA wraps with FSDP2 (``fully_shard``) over the
    channel's process group; the LoRA weights stay whole on every process, so their
    gradients, optimizer state and checkpoints are those of a replicated run."""
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.fsdp import fully_shard

    group = getattr(collectives, "tensor_group", None)
    if group is None:
        raise ConfigError("parallelism=fsdp needs torch.distributed between the processes")
    mesh = DeviceMesh.from_group(group, device_type="cuda" if device.startswith("cuda") else "cpu")
    for module in model.modules():
        base = getattr(module, "base_layer", None)
        if base is not None and not list(base.children()):
            fully_shard(base, mesh=mesh, reshard_after_forward=True)


def idle_pass(model: Any, device: str, *, backward: bool) -> None:
    """A pass over one token that contributes nothing (its loss is multiplied by zero)."""
    import torch

    ids = torch.zeros((1, 1), dtype=torch.long, device=device)
    logits = model(input_ids=ids).logits
    if backward:
        (logits.float().sum() * 0.0).backward()


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


_UNSET: Any = object()


class _SharedCall:
    """One seeded ``sample`` call of a ``SplitSampler``: computed by one process, known to all."""

    def __init__(self, owner: SplitSampler, index: int, local: Any) -> None:
        self._owner = owner
        self.index = index
        self.local = local  # this process's future, when the call is its to compute
        self.value: Any = _UNSET
        self.error: str | None = None

    def result(self, timeout: float | None = None) -> Any:
        if self.value is _UNSET and self.error is None:
            self._owner.flush()
        if self.error is not None:
            raise SamplingFailed(self.error)
        return self.value

    def done(self) -> bool:
        return self.value is not _UNSET or self.error is not None


class SamplingFailed(KitchenError):
    """A sample call failed on the process that computed it."""


class SplitSampler:
    """A sampling client whose seeded calls are shared out across the processes.

    Every process makes the same calls in the same order (they run the same stage). Call ``i``
    with a seed (or greedy) is computed by rank ``i mod N`` only; the first ``result()`` any
    process asks for gathers every pending call's result from the process that computed it, so
    all processes see all results. A seeded call's tokens depend only on its prompt, parameters
    and seed, so the results are the same bytes whichever process computed them. A call without
    a seed draws from the sampler's own stream, so every process computes it itself.
    """

    def __init__(self, inner: Any, collectives: Collectives) -> None:
        self._inner = inner
        self._c = collectives
        self._pending: list[_SharedCall] = []
        self._count = 0

    def sample(self, prompt: Any, num_samples: int, sampling_params: Any) -> Any:
        seeded = sampling_params.seed is not None or sampling_params.temperature == 0
        if not seeded:
            return self._inner.sample(prompt, num_samples, sampling_params)
        index, self._count = self._count, self._count + 1
        mine = index % self._c.world_size == self._c.rank
        local = self._inner.sample(prompt, num_samples, sampling_params) if mine else None
        call = _SharedCall(self, index, local)
        self._pending.append(call)
        return call

    def flush(self) -> None:
        calls, self._pending = self._pending, []
        mine: dict[int, tuple[str, Any]] = {}
        for call in calls:
            if call.local is None:
                continue
            try:
                mine[call.index] = ("ok", call.local.result())
            except Exception as exc:
                mine[call.index] = ("error", f"{type(exc).__name__}: {exc}")
        merged: dict[int, tuple[str, Any]] = {}
        for part in self._c.all_gather(mine):
            merged.update(part)
        for call in calls:
            kind, value = merged[call.index]
            if kind == "ok":
                call.value = value
            else:
                call.error = str(value)

    def sample_batch(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.sample_batch(*args, **kwargs)

    def compute_logprobs(self, prompt: Any) -> Any:
        return self._inner.compute_logprobs(prompt)

    def get_tokenizer(self) -> Any:
        return self._inner.get_tokenizer()

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> SplitSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
