"""Building the local backend's clients for served models and samplers.

tinker's LoRA switches (train_attn, train_mlp) map onto target modules; ``train_unembed`` is
accepted and has no effect, because the local backend never adapts the output head (on a
model with tied embeddings, as the embedded one is, adapting the head would also move the
input embeddings). A sampler is always built from an adapter folder on disk, so one code path
serves a fresh sampler and one rebuilt after a restart, bit for bit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kitchen.serve.errors import bad_request
from kitchen.types import Future

if TYPE_CHECKING:  # pragma: no cover
    from kitchen.adapters.local_torch.client import LocalTrainingClient
    from kitchen.adapters.local_torch.sampling import LocalSamplingClient

T = TypeVar("T")

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


async def wait(future: Future[T]) -> T:
    """Await a local-backend future (a concurrent.futures.Future) without blocking the loop."""
    if not isinstance(future, concurrent.futures.Future):  # pragma: no cover - a bug
        raise TypeError(f"expected a concurrent.futures.Future, got {type(future).__name__}")
    return await asyncio.wrap_future(future)


def target_modules(train_attn: bool, train_mlp: bool) -> tuple[str, ...] | None:
    """None (every linear layer but the head) when both are on, as the local backend does."""
    if train_attn and train_mlp:
        return None
    if train_attn:
        return ATTN
    if train_mlp:
        return MLP
    raise bad_request(
        "train_attn and train_mlp are both off: LoRA on the head alone is not supported"
    )


def training_client(
    base_model: str,
    rank: int,
    seed: int,
    targets: tuple[str, ...] | None,
    device: str,
    max_tokens_per_microbatch: int | None = None,
) -> LocalTrainingClient:
    """Blocking (loads the model on the torch thread): call it from a worker thread."""
    from kitchen.adapters.local_torch import LocalTrainingClient

    return LocalTrainingClient(
        model_name=base_model,
        lora_rank=rank,
        target_modules=targets,
        seed=seed,
        device=device,
        max_tokens_per_microbatch=max_tokens_per_microbatch,
    )


def sampling_client(
    base_model: str,
    rank: int,
    targets: tuple[str, ...] | None,
    adapter_dir: Path | None,
    device: str,
) -> LocalSamplingClient:
    """A sampler on ``base_model`` plus the adapter in ``adapter_dir`` (none: the base model)."""
    from kitchen.adapters.local_torch import worker

    return worker.run(_load_sampler, base_model, rank, targets, adapter_dir, device)


def _load_sampler(
    base_model: str,
    rank: int,
    targets: tuple[str, ...] | None,
    adapter_dir: Path | None,
    device: str,
) -> Any:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from kitchen.adapters.local_torch import export, loading
    from kitchen.adapters.local_torch.sampling import LocalSamplingClient

    # Loading seeds torch's global generator; the models being trained must not notice.
    saved = torch.get_rng_state()
    try:
        path = loading.resolve_name(base_model)
        lora = loading.lora_settings(rank, None, 0.0, targets)
        dev = loading.pick_device(device)
        model = loading.load_lora_model(path, lora, dev, torch.float32, 0)
        if adapter_dir is not None:
            set_peft_model_state_dict(
                model, load_file(str(adapter_dir / "adapter_model.safetensors"))
            )
        snapshot = export.sampling_snapshot(model)
        tokenizer = loading.load_tokenizer(path)
    finally:
        torch.set_rng_state(saved)
    return LocalSamplingClient(snapshot, tokenizer, seed=0)
