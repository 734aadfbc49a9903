"""The server is built on ports: the local backend is a ServingClient, and its LoRA switches
map onto the target modules the server always used (no model is loaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.adapters.local_torch.service import ATTN, MLP, LocalServiceClient, lora_targets
from kitchen.errors import ConfigError
from kitchen.ports import ServiceClient, ServingClient


def test_the_local_backend_serves() -> None:
    service = LocalServiceClient()
    assert isinstance(service, ServingClient)
    assert isinstance(service, ServiceClient)


def test_lora_switches() -> None:
    assert lora_targets(True, True) is None  # every linear projection but the head
    assert lora_targets(True, False) == ATTN == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert lora_targets(False, True) == MLP == ("gate_proj", "up_proj", "down_proj")
    with pytest.raises(ConfigError, match="both off"):
        lora_targets(False, False)


def test_resolve_model_names_the_shipped_folder() -> None:
    folder = LocalServiceClient().resolve_model("kitchen/tiny")
    assert Path(folder).is_absolute() and (Path(folder) / "config.json").is_file()
    assert LocalServiceClient().vocab_size("kitchen/tiny") > 0


def test_only_identical_seeded_or_greedy_samples_share_a_batch() -> None:
    from kitchen.adapters.local_torch.sampling import batchable
    from kitchen.types import ModelInput, SamplingParams

    prompt = ModelInput.from_ints([3, 4, 5])
    seeded = SamplingParams(max_tokens=8, temperature=1.0, seed=3)
    key = batchable(prompt, 2, seeded)
    assert key is not None and key == batchable(ModelInput.from_ints([3, 4, 5]), 2, seeded)
    assert key != batchable(prompt, 2, SamplingParams(max_tokens=8, temperature=1.0, seed=4))
    assert key != batchable(ModelInput.from_ints([3, 4, 6]), 2, seeded)  # same length, other
    assert key != batchable(prompt, 1, seeded)
    assert batchable(prompt, 2, SamplingParams(temperature=1.0)) is None  # the shared stream
    assert batchable(prompt, 2, SamplingParams(temperature=0.0)) is not None  # greedy
