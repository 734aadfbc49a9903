"""Weights leaving the trainer: a PEFT adapter folder, a merged model, a sampling snapshot.

The adapter folder is written by hand rather than by ``save_pretrained`` because peft expands
``all-linear`` into a set, whose order follows Python's per-process hash seed: the same
weights would give a different adapter_config.json in every process. Here the config is
sorted and the model card skipped, so equal weights give equal files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.adapters.local_torch.state import prepare_folder

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from peft import PeftModel


def save_adapter(model: PeftModel, folder: Path) -> None:
    """Write adapter_config.json + adapter_model.safetensors, loadable by plain peft."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    prepare_folder(folder)
    tensors = get_peft_model_state_dict(model)
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    save_file(cpu, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = model.peft_config[model.active_adapter].to_dict()
    config["inference_mode"] = True
    text = json.dumps(config, sort_keys=True, indent=2, default=_sorted_set)
    (folder / "adapter_config.json").write_text(text + "\n", encoding="utf-8")


def load_adapter(model: PeftModel, folder: Path) -> None:
    """Copy an adapter folder's weights into ``model``'s LoRA, refusing another layout."""
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    from kitchen.errors import ConfigError

    saved = load_file(str(folder / "adapter_model.safetensors"))
    mine = get_peft_model_state_dict(model)
    if set(saved) != set(mine) or any(saved[k].shape != mine[k].shape for k in mine):
        raise ConfigError(
            f"adapter {folder} has another LoRA layout (rank or target modules) than this run: "
            "set lora_rank to the adapter's rank"
        )
    with torch.no_grad():
        set_peft_model_state_dict(model, {k: v.to(mine[k].device) for k, v in saved.items()})


def _sorted_set(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} into adapter_config.json")


def export_merged(model: PeftModel, tokenizer: Any, folder: Path) -> None:
    """Full weights with the adapter folded in (a copy: the trainer keeps its adapter)."""
    prepare_folder(folder)
    merged = copy.deepcopy(model).merge_and_unload()
    merged.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def sampling_snapshot(model: PeftModel) -> torch.nn.Module:
    """A frozen copy of the current weights for generation.

    In float32 the adapter is merged into the copy (one matmul per layer instead of three,
    and rounding far below float32's noise); in bfloat16 merging would round the small LoRA
    update into coarse base weights, so the adapter stays separate there.
    """
    import torch

    snapshot = copy.deepcopy(model)
    if next(snapshot.get_base_model().parameters()).dtype == torch.float32:
        snapshot = snapshot.merge_and_unload()
    snapshot.eval()
    snapshot.requires_grad_(False)
    return snapshot
