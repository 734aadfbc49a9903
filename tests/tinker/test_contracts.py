"""The training, sampling and factory contracts, kept by the Tinker adapter against a served
local backend: the same suites the local backend passes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kitchen.testing.factory_contract import ServiceClientContract
from kitchen.testing.sampling_contract import SamplingClientContract
from kitchen.testing.training_contract import TrainingClientContract

BASE = "kitchen/tiny"
# The SDK's own connections may be collected after a test; they are not the adapter's to close.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def service(tinker_env: Any) -> Iterator[Any]:
    from kitchen.adapters.tinker import TinkerServiceClient

    made = TinkerServiceClient()
    yield made
    made.close()


class TestTinkerTrainingClient(TrainingClientContract):
    __test__ = True

    @pytest.fixture
    def make_client(self, service: Any) -> Callable[..., Any]:
        def make(seed: int = 0) -> Any:
            return service.create_lora_training_client(BASE, 4, seed=seed)

        return make


@pytest.fixture(scope="module")
def trained_sampler(service: Any) -> Iterator[tuple[Any, Any]]:
    from kitchen.testing.training_contract import STEP, supervised

    client = service.create_lora_training_client(BASE, 4, seed=0)
    client.forward_backward([supervised(client, "Once upon a time there was a cat.")])
    client.optim_step(STEP).result()
    sampler = client.sampling_client()
    yield sampler, client.get_tokenizer()
    sampler.close()


class TestTinkerSamplingClient(SamplingClientContract):
    __test__ = True

    @pytest.fixture
    def sampler(self, trained_sampler: tuple[Any, Any]) -> Any:
        return trained_sampler[0]

    @pytest.fixture
    def tokenizer(self, trained_sampler: tuple[Any, Any]) -> Any:
        return trained_sampler[1]


class TestTinkerServiceClient(ServiceClientContract):
    __test__ = True

    @pytest.fixture
    def service(self, tinker_env: Any) -> Iterator[Any]:
        from kitchen.adapters.tinker import TinkerServiceClient

        made = TinkerServiceClient()
        yield made
        made.close()

    @pytest.fixture
    def base_model(self) -> str:
        return BASE
