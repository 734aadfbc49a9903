"""The ServiceClient (factory) contract, written once for every backend.

Subclass ``ServiceClientContract`` in a test module and override two fixtures: ``service``
(the factory under test; closed after each test) and ``base_model`` (a model name it serves).
The suite holds a policy, a frozen reference and a teacher at once, the way the DPO, RL and
distillation workflows do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kitchen.ports import SamplingClient, ServiceClient, TrainingClient
from kitchen.testing.training_contract import STEP, close_to, flat, logprob_rows, supervised
from kitchen.types import ModelInput, SamplingParams

TEXT = "the cat sat on the mat."


class ServiceClientContract:
    __test__ = False

    @pytest.fixture
    def service(self) -> Iterator[ServiceClient]:
        raise NotImplementedError("override the `service` fixture")

    @pytest.fixture
    def base_model(self) -> str:
        raise NotImplementedError("override the `base_model` fixture")

    def _lora(self, service: ServiceClient, base_model: str, seed: int = 0) -> TrainingClient:
        return service.create_lora_training_client(base_model, 4, seed=seed)

    def test_it_makes_clients_of_the_port_shapes(
        self, service: ServiceClient, base_model: str
    ) -> None:
        training = self._lora(service, base_model)
        assert isinstance(training, TrainingClient)
        sampler = service.create_sampling_client(base_model=base_model)
        assert isinstance(sampler, SamplingClient)
        tokenizer = service.get_tokenizer(base_model)
        assert tokenizer.encode(TEXT, add_special_tokens=False)

    def test_the_same_seed_gives_the_same_fresh_lora(
        self, service: ServiceClient, base_model: str
    ) -> None:
        a, b = self._lora(service, base_model, 3), self._lora(service, base_model, 3)
        datum = supervised(a, TEXT)
        out_a = a.forward_backward([datum]).result()
        out_b = b.forward_backward([datum]).result()
        assert flat(logprob_rows(out_a)) == close_to(logprob_rows(out_b))

    def test_a_base_sampler_scores_like_an_untrained_lora(
        self, service: ServiceClient, base_model: str
    ) -> None:
        """A fresh LoRA starts at zero: the base model and the fresh policy agree."""
        policy = self._lora(service, base_model)
        reference = service.create_sampling_client(base_model=base_model)
        tokens = policy.get_tokenizer().encode(TEXT, add_special_tokens=False)
        prompt = ModelInput.from_ints(tokens)
        assert flat([reference.compute_logprobs(prompt).result()[1:]]) == close_to(
            [policy.compute_logprobs(prompt).result()[1:]]
        )

    def test_a_policy_a_frozen_reference_and_a_teacher_live_side_by_side(
        self, service: ServiceClient, base_model: str, tmp_path: Path
    ) -> None:
        teacher_trainer = self._lora(service, base_model, seed=1)
        for _ in range(3):
            teacher_trainer.forward_backward([supervised(teacher_trainer, TEXT)])
            teacher_trainer.optim_step(STEP).result()
        adapter = tmp_path / "teacher"
        adapter.mkdir()
        teacher_trainer.save_weights_for_sampler(adapter).result()
        teacher = service.create_sampling_client(base_model=base_model, model_path=str(adapter))
        reference = service.create_sampling_client(base_model=base_model)
        policy = self._lora(service, base_model)
        prompt = ModelInput.from_ints(policy.get_tokenizer().encode(TEXT, add_special_tokens=False))
        before_ref = reference.compute_logprobs(prompt).result()
        before_teacher = teacher.compute_logprobs(prompt).result()
        for _ in range(2):
            policy.forward_backward([supervised(policy, TEXT)])
            policy.optim_step(STEP).result()
        # Training the policy moves neither the reference nor the teacher.
        assert reference.compute_logprobs(prompt).result() == before_ref
        assert teacher.compute_logprobs(prompt).result() == before_teacher
        # The teacher holds the trained weights: it scores the text it learnt higher.
        assert sum(v for v in before_teacher[1:] if v is not None) > sum(
            v for v in before_ref[1:] if v is not None
        )
        trained = teacher_trainer.compute_logprobs(prompt).result()
        assert flat([trained[1:]]) == close_to([before_teacher[1:]])

    def test_a_client_from_state_continues_where_the_saved_one_stood(
        self, service: ServiceClient, base_model: str, tmp_path: Path
    ) -> None:
        first = self._lora(service, base_model)
        first.forward_backward([supervised(first, TEXT)])
        first.optim_step(STEP).result()
        saved = first.save_state(tmp_path / "state").result()
        again = service.create_training_client_from_state(
            saved.path, base_model=base_model, rank=4, seed=0
        )
        assert again.step == 1
        datum = supervised(first, TEXT)
        assert flat(logprob_rows(again.forward_backward([datum]).result())) == close_to(
            logprob_rows(first.forward_backward([datum]).result())
        )

    def test_greedy_samples_of_the_base_model_repeat(
        self, service: ServiceClient, base_model: str
    ) -> None:
        sampler = service.create_sampling_client(base_model=base_model)
        prompt = ModelInput.from_ints(
            service.get_tokenizer(base_model).encode("the", add_special_tokens=False)
        )
        params = SamplingParams(max_tokens=4, temperature=0.0)
        one = sampler.sample(prompt, 1, params).result().sequences[0].tokens
        two = sampler.sample(prompt, 1, params).result().sequences[0].tokens
        assert one == two and 0 < len(one) <= 4

    def test_close_closes_what_it_made(self, service: ServiceClient, base_model: str) -> None:
        training: Any = self._lora(service, base_model)
        service.close()
        with pytest.raises(Exception):  # noqa: B017 - any error: the client is gone
            training.forward_backward([]).result()
