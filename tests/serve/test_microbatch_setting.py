"""``kitchen serve --max-tokens-per-microbatch``: each served model records the value it was
created with, and a rebuilt model gets that value back, whatever the server runs with now."""

from __future__ import annotations

import asyncio

import pytest

from kitchen.adapters.local_torch.service import LocalServiceClient
from kitchen.serve.futures import FutureTable
from kitchen.serve.journal import ModelSpec
from kitchen.serve.model import ServedModel

SPEC = {
    "model_id": "s1:train:0",
    "session_id": "s1",
    "model_seq_id": 0,
    "owner": "k1",
    "base_model": "kitchen/tiny",
    "lora_rank": 4,
    "seed": 0,
}


def test_a_model_records_its_budget_and_one_recorded_before_gets_one_batch() -> None:
    spec = ModelSpec(**SPEC, max_tokens_per_microbatch=512)
    assert spec.config()["max_tokens_per_microbatch"] == 512
    assert ModelSpec.from_config(spec.config()).max_tokens_per_microbatch == 512
    assert ModelSpec.from_config(dict(SPEC)).max_tokens_per_microbatch is None


def test_a_rebuilt_model_trains_with_its_recorded_budget() -> None:
    async def build() -> tuple[int | None, str | None]:
        spec = ModelSpec.from_config({**SPEC, "max_tokens_per_microbatch": 512})
        backend = LocalServiceClient(device="cpu", max_tokens_per_microbatch=16384)
        model = ServedModel(spec, None, FutureTable(), 2, backend)  # type: ignore[arg-type]
        await model.start([], {})
        assert model.client is None  # loaded when its first request runs, or when warmed
        await model.warm()
        assert model.client is not None
        budget = model.client._budget  # type: ignore[attr-defined]
        model.client.close()
        return budget, model.broken

    assert asyncio.run(build()) == (512, None)


@pytest.mark.parametrize("given", ["0", "-3", "many"])
def test_the_flag_refuses_a_budget_that_is_not_a_positive_number(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from kitchen.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["serve", "--max-tokens-per-microbatch", given])
    assert caught.value.code == 2
    assert "not a positive number of tokens nor none" in capsys.readouterr().err
