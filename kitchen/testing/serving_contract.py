"""The ServingClient contract's shared base, written once for every backend ``kitchen serve``
can stand on.

Subclass ``ServingClientContract`` in a test module and override three fixtures:
``make_service`` (a fresh service each call; the suite closes what it made), and
``base_model`` / ``other_base`` (two models it serves). Models made on one base share its
frozen weights, and each computes what it would alone, bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kitchen.ports import ServingClient, TrainingClient
from kitchen.testing.training_contract import STEP, logprob_rows, supervised

TEXTS = ("the cat sat on the mat.", "a dog ran in the park today.")


def _steps(client: TrainingClient, text: str, n: int) -> list[Any]:
    """n supervised steps; each step's loss, logprobs and grad norm."""
    out: list[Any] = []
    for _ in range(n):
        fb = client.forward_backward([supervised(client, text)]).result()
        opt = client.optim_step(STEP).result()
        out.append((fb.metrics["loss:sum"], logprob_rows(fb), opt.metrics["grad_norm"]))
    return out


def _state_digest(client: TrainingClient, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True)
    client.save_state(folder).result()
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class ServingClientContract:
    __test__ = False

    @pytest.fixture
    def make_service(self) -> Callable[[], ServingClient]:
        raise NotImplementedError("override the `make_service` fixture")

    @pytest.fixture
    def base_model(self) -> str:
        raise NotImplementedError("override the `base_model` fixture")

    @pytest.fixture
    def other_base(self) -> str:
        raise NotImplementedError("override the `other_base` fixture")

    @pytest.fixture
    def services(self, make_service: Callable[[], ServingClient]) -> Iterator[Callable[[], Any]]:
        made: list[tuple[ServingClient, list[Any]]] = []

        def make() -> tuple[ServingClient, list[Any]]:
            made.append((make_service(), []))
            return made[-1]

        yield make
        for service, clients in made:
            for client in clients:
                client.close()
            service.close()

    def _client(self, service: Any, base: str, seed: int, **switches: bool) -> TrainingClient:
        service_, opened = service
        client = service_.create_served_training_client(base, 4, seed=seed, **switches)
        opened.append(client)
        return client

    def test_models_on_one_base_share_its_weights(
        self, services: Callable[[], Any], base_model: str, other_base: str
    ) -> None:
        made = services()
        service = made[0]
        assert dict(service.loaded_bases()) == {}
        self._client(made, base_model, 1)
        one = dict(service.loaded_bases())
        name = service.resolve_model(base_model)
        assert list(one) == [name] and one[name] > 0
        self._client(made, base_model, 2)
        self._client(made, base_model, 3, train_attn=False)
        opened = made[1]
        sampler = service.create_served_sampling_client(base_model, 4)
        opened.append(sampler)
        assert dict(service.loaded_bases()) == one  # three models and a sampler, one base
        self._client(made, other_base, 4)
        both = dict(service.loaded_bases())
        assert set(both) == {service.resolve_model(base_model), service.resolve_model(other_base)}
        assert both[service.resolve_model(base_model)] == one[service.resolve_model(base_model)]

    def test_a_model_on_a_shared_base_computes_what_it_would_alone(
        self, services: Callable[[], Any], base_model: str, other_base: str, tmp_path: Path
    ) -> None:
        alone = services()
        a_alone = self._client(alone, base_model, 5)
        expected = _steps(a_alone, TEXTS[0], 3)
        expected_state = _state_digest(a_alone, tmp_path / "alone")

        crowded = services()
        a = self._client(crowded, base_model, 5)
        b = self._client(crowded, base_model, 6)
        c = self._client(crowded, other_base, 5)
        got = []
        for _ in range(3):  # the three models' steps interleaved on the shared torch thread
            got += _steps(a, TEXTS[0], 1)
            _steps(b, TEXTS[1], 1)
            _steps(c, TEXTS[0], 1)
        assert got == expected  # bit for bit: == on floats, not a tolerance
        assert _state_digest(a, tmp_path / "crowded") == expected_state
        # a sampler made from the crowded model's adapter scores like one made alone
        adapter = tmp_path / "adapter"
        adapter.mkdir()
        a.save_weights_for_sampler(adapter).result()
        prompt = supervised(a, TEXTS[0]).model_input
        shared = crowded[0].create_served_sampling_client(base_model, 4, adapter_dir=adapter)
        crowded[1].append(shared)
        fresh = services()
        lone = fresh[0].create_served_sampling_client(base_model, 4, adapter_dir=adapter)
        fresh[1].append(lone)
        assert shared.compute_logprobs(prompt).result() == lone.compute_logprobs(prompt).result()
