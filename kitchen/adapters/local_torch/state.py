"""Saving and restoring everything a run needs to continue bit-exactly.

A state folder holds safetensors files and one canonical JSON file — formats with no
timestamps, pickles or insertion-order accidents — so saving the same state twice writes the
same bytes, and a checkpoint's sha256 means something. Tensors are keyed by parameter name,
not by position, so a mismatched model is refused instead of loaded crooked.

    weights.safetensors     trainable (LoRA) parameters
    optimizer.safetensors   AdamW moments and per-parameter step counts
    rng.safetensors         torch CPU (and CUDA) generator states, numpy's key array
    state.json              step, LoRA shape, optimizer hyper-parameters, the rest of the RNGs
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.errors import CheckpointCorrupt, ConfigError, NotFound

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT = 1
FILES = ("weights.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def prepare_folder(folder: Path) -> None:
    """Accept a missing or empty folder; refuse one with content rather than mix two states."""
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty: save a state into a new, empty folder")
    folder.mkdir(parents=True, exist_ok=True)


def save(
    folder: Path,
    params: dict[str, torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    header: dict[str, Any],
) -> None:
    """Write the four files; ``header`` (step, LoRA shape …) goes into state.json as is."""
    from safetensors.torch import save_file

    prepare_folder(folder)
    save_file(
        {n: p.detach().to("cpu").contiguous() for n, p in params.items()},
        str(folder / "weights.safetensors"),
    )
    moments, groups = _optimizer_tensors(params, optimizer)
    save_file(moments, str(folder / "optimizer.safetensors"))
    rng_tensors, rng_json = _capture_rng()
    save_file(rng_tensors, str(folder / "rng.safetensors"))
    body = {**header, "format": FORMAT, "optimizer": groups, "rng": rng_json}
    (folder / "state.json").write_text(canonical_json(body) + "\n", encoding="utf-8")


def read_header(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise NotFound(f"no saved state at {folder}: pass a folder written by save_state")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointCorrupt(f"saved state at {folder} lacks {missing[0]}: save it again")
    try:
        header: dict[str, Any] = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CheckpointCorrupt(f"{folder}/state.json is not valid JSON: save it again") from exc
    if header.get("format") != FORMAT:
        raise CheckpointCorrupt(
            f"{folder} has state format {header.get('format')!r}, this kitchen reads {FORMAT}"
        )
    return header


def load_weights(folder: Path, params: dict[str, torch.nn.Parameter]) -> None:
    import torch

    saved = _load_tensors(folder / "weights.safetensors")
    if set(saved) != set(params):
        raise ConfigError(
            f"{folder} holds weights of a different LoRA layout: load it with the model, rank "
            "and target_modules it was trained with"
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved[name])


def load_optimizer(
    folder: Path,
    params: dict[str, torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    groups: dict[str, Any],
) -> None:
    saved = _load_tensors(folder / "optimizer.safetensors")
    index = {name: i for i, name in enumerate(params)}
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in saved.items():
        field, _, name = key.partition("/")
        if name not in index:
            raise ConfigError(f"{folder} holds optimizer state for unknown parameter {name}")
        state.setdefault(index[name], {})[field] = tensor
    current = optimizer.state_dict()["param_groups"]
    merged = [{**current[0], **groups}]
    optimizer.load_state_dict({"state": state, "param_groups": merged})


def restore_rng(folder: Path, saved_json: dict[str, Any]) -> None:
    import numpy as np
    import torch

    tensors = _load_tensors(folder / "rng.safetensors")
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    np_json = saved_json["numpy"]
    keys = tensors["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, np_json["pos"], np_json["has_gauss"], np_json["cached_gaussian"])
    )
    version, internal, gauss = saved_json["python"]
    random.setstate((version, tuple(internal), gauss))


def _optimizer_tensors(
    params: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import torch

    tensors: dict[str, torch.Tensor] = {}
    for name, param in params.items():
        for field, value in optimizer.state.get(param, {}).items():
            if isinstance(value, torch.Tensor):
                tensors[f"{field}/{name}"] = value.detach().to("cpu").contiguous()
    (group,) = optimizer.param_groups
    hyper = {k: list(v) if isinstance(v, tuple) else v for k, v in group.items() if k != "params"}
    return tensors, hyper


def _capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import numpy as np
    import torch

    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{i}"] = state
    _, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    rng_json = {
        "numpy": {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [version, list(internal), gauss],
    }
    return tensors, rng_json


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointCorrupt(f"{path} is not a readable safetensors file: save again") from exc
