"""Turning a model name into a LoRA-wrapped causal LM, its tokenizer, and a seeded process.

Local folders and hub ids go through the same ``from_pretrained`` calls, so that the
embedded tiny model and a real hub model exercise one code path. Loader errors a user can
cause are turned into one-line kitchen errors here, in one place.
"""

from __future__ import annotations

import random
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.errors import ConfigError, NotFound, OfflineMiss

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from peft import PeftModel

DEFAULT_LORA_ALPHA = 32
"""tinker's fixed alpha: its learning-rate recipes assume scale = 32 / rank, so they transfer."""

ALL_LINEAR = "all-linear"
"""peft's name for every linear projection of the architecture except the output head."""


@dataclass(frozen=True, slots=True)
class LoraSettings:
    """The LoRA shape of a client; saved with its state so a mismatched load is refused."""

    rank: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...] | None

    def as_json(self) -> dict[str, Any]:
        targets = list(self.target_modules) if self.target_modules is not None else ALL_LINEAR
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout, "targets": targets}


def lora_settings(
    rank: int, alpha: int | None, dropout: float, target_modules: Sequence[str] | None
) -> LoraSettings:
    if rank < 1:
        raise ConfigError(f"lora_rank must be at least 1, got {rank}: pass e.g. lora_rank=16")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"lora_dropout must be in [0, 1), got {dropout}")
    targets = tuple(target_modules) if target_modules is not None else None
    return LoraSettings(rank, DEFAULT_LORA_ALPHA if alpha is None else alpha, dropout, targets)


def resolve_name(model_name: str) -> str:
    """Map ``kitchen/…`` names to shipped folders, and local folders to absolute paths.

    An absolute path is what peft writes as ``base_model_name_or_path``, so an adapter saved
    from a local base model loads from any working directory.
    """
    try:
        from kitchen.embedded import resolve_model
    except ImportError:
        resolved = model_name
    else:
        resolved = str(resolve_model(model_name))
    path = Path(resolved).expanduser()
    return str(path.resolve()) if path.is_dir() else resolved


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu, cuda or auto, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch sees no CUDA device: pass device='cpu'")
    return device


def pick_dtype(dtype: str) -> torch.dtype:
    import torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise ConfigError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    return dtypes[dtype]


def seed_everything(seed: int, device: str) -> None:
    """Seed python, numpy and torch, and ask torch for deterministic kernels on CPU.

    CUDA determinism needs ``CUBLAS_WORKSPACE_CONFIG`` set before CUDA starts, which a library
    cannot do for its caller, so there the flag is left to the user.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)


def capture_rng(device: str) -> tuple[Any, Any]:
    """The torch generator states a forward pass draws from (dropout), to rewind to them."""
    import torch

    cuda = torch.cuda.get_rng_state() if device == "cuda" else None
    return torch.get_rng_state(), cuda


def restore_rng(saved: tuple[Any, Any], device: str) -> None:
    import torch

    cpu, cuda = saved
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)


def enable_checkpointing(model: PeftModel) -> None:
    """Recompute each decoder layer's activations in the backward instead of keeping them.

    The non-reentrant form: it needs no input that requires a gradient (the base is frozen)
    and it replays the RNG, so dropout draws the same masks in the recomputation.
    """
    base: Any = model.get_base_model()
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"{type(base).__name__} does not support gradient checkpointing: "
            "set gradient_checkpointing=false"
        )
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers 5 renamed it
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


# One load at a time in a process: transformers imports parts of itself and of accelerate on a
# first load, and two threads doing that at once (kitchen serve rebuilding a model while a
# request loads another) can meet a partly imported module.
_LOADING = threading.Lock()


def from_pretrained(loader: Any, name: str, **kwargs: Any) -> Any:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # kitchen reports progress itself, on stderr
    try:
        with _LOADING:
            return loader.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        if Path(name).is_dir() or isinstance(exc, ValueError):
            raise ConfigError(
                f"{name} is not a loadable model ({_first_line(exc)}): "
                "pass a folder written by save_pretrained or a hub model id"
            ) from exc
        if "connect" in str(exc) or _offline():
            raise OfflineMiss(
                f"model {name!r} is not a local folder nor in the Hugging Face cache and the hub "
                "is unreachable: download it while online or pass a local folder"
            ) from exc
        raise NotFound(
            f"model {name!r} was not found ({_first_line(exc)}): check the hub id or folder"
        ) from exc


def _offline() -> bool:
    import huggingface_hub.constants

    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return from_pretrained(AutoTokenizer, name)


class SharedBases:
    """One frozen copy of each base model, shared by every model wrapped on it.

    ``instance(name, dtype, device)`` loads the base the first time it is asked for and
    afterwards hands out a new module tree whose parameters and buffers *are* the first
    one's tensors (a deep copy that copies no tensor the base holds): wrapping it in a LoRA
    costs the LoRA, not another base. Nothing that runs on a shared base may write to its
    frozen weights (merging an adapter in place would); a sampling snapshot copies before
    it merges. The values are those of a fresh load, so a model on a shared base computes
    exactly what the same model loaded alone does. Used from the torch thread only.
    """

    def __init__(self) -> None:
        self._bases: dict[tuple[str, str, str], Any] = {}

    def instance(self, name: str, dtype: torch.dtype, device: str) -> Any:
        import copy

        key = (name, str(dtype), device)
        base = self._bases.get(key)
        if base is None:
            from transformers import AutoModelForCausalLM

            check_folder(name)
            base = from_pretrained(AutoModelForCausalLM, name, dtype=dtype).to(device)
            base.requires_grad_(False)
            self._bases[key] = base
        shared: dict[int, Any] = {id(t): t for t in base.parameters()}
        shared.update({id(t): t for t in base.buffers()})
        return copy.deepcopy(base, memo=shared)

    def loaded(self) -> dict[str, int]:
        """Each base in memory and the bytes its tensors take (counted once)."""
        out: dict[str, int] = {}
        for (name, _, _), base in self._bases.items():
            seen: dict[int, int] = {}
            for t in [*base.parameters(), *base.buffers()]:
                seen[t.data_ptr()] = t.numel() * t.element_size()
            out[name] = out.get(name, 0) + sum(seen.values())
        return out


def check_folder(name: str) -> None:
    if (Path(name) / "config.json").is_file():  # without one, from_pretrained says what is wrong
        from kitchen.adapters.local_torch.architectures import check_model_folder

        check_model_folder(name)


def load_lora_model(
    name: str,
    lora: LoraSettings,
    device: str,
    dtype: torch.dtype,
    seed: int,
    bases: SharedBases | None = None,
) -> PeftModel:
    """Load the base model (or take a shared one from ``bases``) and wrap it; the LoRA init
    draws from a generator seeded here."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if bases is not None:
        base = bases.instance(name, dtype, device)
    else:
        check_folder(name)
        base = from_pretrained(AutoModelForCausalLM, name, dtype=dtype)
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=ALL_LINEAR if lora.target_modules is None else list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    try:
        with warnings.catch_warnings():
            # peft reads a property transformers 5 deprecated; nothing for a user to act on.
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
            # On a fused-expert MoE (Qwen3-MoE) peft adds rank/alpha patterns for a conversion
            # layout that all-linear does not use, and says so; the experts still get LoRA.
            warnings.filterwarnings("ignore", message="The following (rank|alpha)_pattern keys")
            model = get_peft_model(base, config)
    except ValueError as exc:
        raise ConfigError(f"cannot apply LoRA to {name}: {_first_line(exc)}") from exc
    keep_adapter_in_float32(model)
    return model.to(device)


def keep_adapter_in_float32(model: PeftModel) -> None:
    """Mixed precision: a bfloat16 base, a float32 LoRA (so AdamW's moments are float32 too).

    bfloat16's 8-bit mantissa would round most of a small learning rate's update away; peft
    computes the adapter's branch in its weights' dtype and casts the sum back to the base's.
    """
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
