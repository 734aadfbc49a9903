"""The local torch backend keeps the TrainingClient and SamplingClient contracts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.factory_contract import ServiceClientContract
from kitchen.testing.sampling_contract import SamplingClientContract
from kitchen.testing.serving_contract import ServingClientContract
from kitchen.testing.training_contract import TrainingClientContract


class TestLocalTrainingClient(TrainingClientContract):
    __test__ = True

    @pytest.fixture
    def make_client(self, tiny_model_dir: Path) -> Callable[..., Any]:
        from kitchen.adapters.local_torch import create_training_client

        def make(seed: int = 0) -> Any:
            return create_training_client(
                model_name=str(tiny_model_dir), lora_rank=4, device="cpu", seed=seed
            )

        return make


@pytest.fixture(scope="module")
def trained_sampler(tiny_model_dir: Path) -> Iterator[tuple[Any, Any]]:
    """A sampler on a client moved off its zero-initialised adapter, so LoRA weights count."""
    from kitchen.adapters.local_torch import create_training_client
    from kitchen.testing.training_contract import STEP, supervised

    client = create_training_client(model_name=str(tiny_model_dir), lora_rank=4, device="cpu")
    client.forward_backward([supervised(client, "Once upon a time there was a cat.")])
    client.optim_step(STEP).result()
    sampler = client.sampling_client()
    yield sampler, client.get_tokenizer()
    sampler.close()
    client.close()


class TestLocalSamplingClient(SamplingClientContract):
    __test__ = True

    @pytest.fixture
    def sampler(self, trained_sampler: tuple[Any, Any]) -> Any:
        return trained_sampler[0]

    @pytest.fixture
    def tokenizer(self, trained_sampler: tuple[Any, Any]) -> Any:
        return trained_sampler[1]


class TestLocalServiceClient(ServiceClientContract):
    __test__ = True

    @pytest.fixture
    def service(self) -> Iterator[Any]:
        from kitchen.adapters.local_torch.service import LocalServiceClient

        made = LocalServiceClient(device="cpu")
        yield made
        made.close()

    @pytest.fixture
    def base_model(self, tiny_model_dir: Path) -> str:
        return str(tiny_model_dir)


@pytest.fixture(scope="module")
def other_tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kitchen.testing.tiny_llama import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama-b"), seed=1)


class TestLocalServingClient(ServingClientContract):
    __test__ = True

    @pytest.fixture
    def make_service(self) -> Callable[[], Any]:
        from kitchen.adapters.local_torch.service import LocalServiceClient

        return lambda: LocalServiceClient(device="cpu")

    @pytest.fixture
    def base_model(self, tiny_model_dir: Path) -> str:
        return str(tiny_model_dir)

    @pytest.fixture
    def other_base(self, other_tiny_dir: Path) -> str:
        return str(other_tiny_dir)


class TestModelProcess(TestLocalServingClient):
    """The local backend in a process of its own, as ``kitchen serve`` runs it: the same
    bases, the service made in the child."""

    @pytest.fixture
    def make_service(self) -> Callable[[], Any]:
        from functools import partial

        from kitchen.adapters.local_torch.service import LocalServiceClient
        from kitchen.serve.model_process import ModelProcess

        return lambda: ModelProcess(partial(LocalServiceClient, device="cpu"))
