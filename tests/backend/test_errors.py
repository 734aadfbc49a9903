"""Mistakes a user can make reach them as one-line kitchen errors, from the future's result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kitchen.errors import CheckpointCorrupt, ConfigError, NotFound, OfflineMiss
from kitchen.testing.training_contract import STEP, supervised, with_inputs
from kitchen.types import ModelInput, SamplingParams

MakeClient = Callable[..., Any]


def test_a_missing_loss_input_is_named(local_client: MakeClient) -> None:
    client = local_client()
    datum = supervised(client, "hello there")
    with pytest.raises(ConfigError, match="datum 0 lacks loss_fn_inputs\\['logprobs'\\]"):
        client.forward_backward([datum], "importance_sampling").result()


def test_a_loss_input_of_the_wrong_length_is_refused(local_client: MakeClient) -> None:
    client = local_client()
    datum = with_inputs(supervised(client, "hello there"), weights=[1.0, 1.0])
    with pytest.raises(ConfigError, match="datum 0: loss_fn_inputs\\['weights'\\] has 2 values"):
        client.forward_backward([datum]).result()


def test_token_ids_outside_the_vocabulary_are_refused(local_client: MakeClient) -> None:
    client = local_client()
    datum = supervised(client, "hello there")
    bad = with_inputs(datum, target_tokens=[5000] * datum.model_input.length)
    with pytest.raises(ConfigError, match="outside the model's vocabulary \\[0, 100\\)"):
        client.forward_backward([bad]).result()


def test_empty_data_and_closed_clients_are_refused(local_client: MakeClient) -> None:
    client = local_client()
    with pytest.raises(ConfigError, match="at least one Datum"):
        client.forward_backward([]).result()
    client.close()
    with pytest.raises(ConfigError, match="client is closed"):
        client.optim_step(STEP)


def test_negative_learning_rate_is_refused(local_client: MakeClient) -> None:
    client = local_client()
    with pytest.raises(ConfigError, match="must not be negative"):
        client.optim_step(type(STEP)(learning_rate=-1.0)).result()
    assert client.step == 0


def test_state_folders_are_checked(local_client: MakeClient, tmp_path: Path) -> None:
    client = local_client()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other.txt").write_text("x")
    with pytest.raises(ConfigError, match="is not empty"):
        client.save_state(tmp_path / "full").result()
    with pytest.raises(NotFound, match="no saved state"):
        client.load_state(tmp_path / "absent").result()
    client.save_state(tmp_path / "saved").result()
    (tmp_path / "saved" / "rng.safetensors").unlink()
    with pytest.raises(CheckpointCorrupt, match=r"lacks rng\.safetensors"):
        client.load_state(tmp_path / "saved").result()


def test_a_state_of_another_lora_shape_is_refused(local_client: MakeClient, tmp_path: Path) -> None:
    local_client(lora_rank=4).save_state(tmp_path / "rank4").result()
    with pytest.raises(ConfigError, match="same LoRA settings"):
        local_client(lora_rank=8).load_state(tmp_path / "rank4").result()


def test_bad_settings_are_refused_at_construction(tiny_model_dir: Path) -> None:
    from kitchen.adapters.local_torch import create_training_client

    for settings, message in (
        ({"device": "tpu"}, "device must be cpu, cuda or auto"),
        ({"dtype": "float16"}, "dtype must be float32 or bfloat16"),
        ({"lora_rank": 0}, "lora_rank must be at least 1"),
    ):
        with pytest.raises(ConfigError, match=message):
            create_training_client(model_name=str(tiny_model_dir), **settings)


def test_a_folder_without_a_model_is_a_config_error(tmp_path: Path) -> None:
    from kitchen.adapters.local_torch import create_training_client

    with pytest.raises(ConfigError, match="is not a loadable model"):
        create_training_client(model_name=str(tmp_path), device="cpu")


def test_an_uncached_hub_model_while_offline_is_an_offline_miss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub.constants

    from kitchen.adapters.local_torch import create_training_client

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineMiss, match="'kitchen-tests/absent-model' is not a local folder"):
        create_training_client(model_name="kitchen-tests/absent-model", device="cpu")


def test_bad_sampling_params_are_refused(local_client: MakeClient) -> None:
    sampler = local_client().sampling_client()
    prompt = ModelInput.from_ints([5, 6, 7])
    for params, message in (
        (SamplingParams(top_p=0.0), "top_p must be in"),
        (SamplingParams(top_k=0), "top_k must be -1"),
        (SamplingParams(temperature=-1.0), "temperature must be >= 0"),
        (SamplingParams(stop=("a", 3)), "mixes strings and token ids"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigError, match=message):
            sampler.sample(prompt, 1, params).result()
    with pytest.raises(ConfigError, match="prompt is empty"):
        sampler.sample(ModelInput.empty(), 1, SamplingParams()).result()
    sampler.close()
