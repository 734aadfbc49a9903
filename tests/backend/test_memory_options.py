"""Memory options of the local backend: bfloat16 as mixed precision, and out of memory as one
line that says what to lower."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from kitchen.errors import OutOfMemory
from kitchen.testing.training_contract import STEP, supervised
from kitchen.types import Datum

MakeClient = Callable[..., Any]
TEXT = "the cat sat on the mat."


def test_bfloat16_is_mixed_precision_lora_and_adam_stay_float32(local_client: MakeClient) -> None:
    client = local_client(dtype="bfloat16")
    data = [supervised(client, TEXT)]
    for _ in range(2):
        client.forward_backward(data).result()
        client.optim_step(STEP).result()

    def dtypes() -> tuple[set[torch.dtype], set[torch.dtype], set[torch.dtype]]:
        model, optimizer = client._model, client._optimizer
        frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
        trained = {p.dtype for p in model.parameters() if p.requires_grad}
        moments = {
            t.dtype
            for s in optimizer.state.values()
            for k, t in s.items()
            if k in ("exp_avg", "exp_avg_sq")
        }
        return frozen, trained, moments

    frozen, trained, moments = client._submit(dtypes).result()
    assert frozen == {torch.bfloat16}
    assert trained == {torch.float32}
    assert moments == {torch.float32}


def _raising(exc: BaseException) -> Callable[[list[Datum], list[torch.Tensor]], Any]:
    def loss(data: list[Datum], logprobs: list[torch.Tensor]) -> Any:
        raise exc

    return loss


@pytest.mark.parametrize(
    "exc",
    [
        MemoryError(),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: not enough memory: "
            "you tried to allocate 40000000000 bytes."
        ),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    ],
    ids=["MemoryError", "DefaultCPUAllocator", "cuda"],
)
def test_an_allocator_failure_is_out_of_memory_saying_what_to_lower(
    local_client: MakeClient, exc: BaseException
) -> None:
    client = local_client(max_tokens_per_microbatch=2048)
    with pytest.raises(OutOfMemory) as caught:
        client.forward_backward_custom([supervised(client, TEXT)], _raising(exc)).result()
    message = str(caught.value)
    assert "\n" not in message
    assert "max_tokens_per_microbatch (now 2048)" in message
    assert "gradient_checkpointing=true" in message
    # other errors are left alone, and the client carries on
    with pytest.raises(ValueError, match="mine"):
        client.forward_backward_custom(
            [supervised(client, TEXT)], _raising(ValueError("mine"))
        ).result()
    assert client.forward_backward([supervised(client, TEXT)]).result().metrics["loss:sum"] > 0


CHILD = textwrap.dedent(
    """
    import resource, sys
    from kitchen.adapters.local_torch import create_training_client
    from kitchen.errors import OutOfMemory
    from kitchen.types import Datum, ModelInput, TensorData

    folder, budget = sys.argv[1], None if sys.argv[2] == "none" else int(sys.argv[2])
    client = create_training_client(
        model_name=folder, lora_rank=4, device="cpu", max_tokens_per_microbatch=budget
    )
    def data(n, width):
        ids = [(5 + i) % 90 + 4 for i in range(width)]
        inputs = {"target_tokens": TensorData.from_list(ids, "int64"),
                  "weights": TensorData.from_list([1.0] * width, "float32")}
        return [Datum(ModelInput.from_ints(ids), inputs)] * n
    client.forward_backward(data(4, 64)).result()  # thread pools and arenas exist before the cap
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + 150 * 2**20, resource.RLIM_INFINITY))
    try:
        out = client.forward_backward(data(32, 512)).result()
    except OutOfMemory as exc:
        print("OOM", exc)
    else:
        print("OK", out.metrics["loss:sum"])
    """
)


@pytest.mark.slow
def test_a_step_too_big_for_its_memory_limit_is_out_of_memory_and_fits_in_micro_batches(
    tiny_model_dir: Path,
) -> None:
    """The same 32 × 512-token step under an address-space cap 150 MiB above the loaded
    client: as one batch it needs more and ends in OutOfMemory; in micro-batches of 512
    tokens it fits."""
    outcomes = {}
    for budget in ("none", "512"):
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(tiny_model_dir), budget],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert child.returncode == 0, child.stderr[-2000:]
        outcomes[budget] = child.stdout.strip().splitlines()[-1]
    assert outcomes["none"].startswith("OOM out of memory in forward backward"), outcomes
    assert "lower max_tokens_per_microbatch (now one batch a call)" in outcomes["none"]
    assert outcomes["512"].startswith("OK"), outcomes


def test_the_memory_settings_are_operating_keys_that_reach_the_backend(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from kitchen import config as kconfig
    from kitchen.adapters.local_torch.batch import DEFAULT_MAX_TOKENS_PER_MICROBATCH
    from kitchen.adapters.local_torch.service import create_service
    from kitchen.errors import ConfigError
    from kitchen.workflows.common.config import TrainingConfig as Config

    assert Config().max_tokens_per_microbatch == DEFAULT_MAX_TOKENS_PER_MICROBATCH
    assert Config().gradient_checkpointing is False
    keys = {"max_tokens_per_microbatch", "gradient_checkpointing"}
    assert keys <= kconfig.operating_keys(Config)
    assert "max_tokens_per_microbatch" in kconfig.float_moving_keys(Config)
    absent = kconfig.absent_values(Config)
    assert absent["max_tokens_per_microbatch"] is None  # runs recorded before: one batch
    assert absent["gradient_checkpointing"] is False
    with pytest.raises(ConfigError, match="max_tokens_per_microbatch"):
        kconfig.build(Config, {}, {"max_tokens_per_microbatch": 0})
    given = ["max_tokens_per_microbatch=null", "gradient_checkpointing=true"]
    cfg = kconfig.build(Config, {}, kconfig.parse_overrides(given))
    service = create_service(cfg, tmp_path)
    try:
        client = service.create_lora_training_client(str(tiny_model_dir), 4)
        assert client._budget is None and client._checkpointing is True
    finally:
        service.close()
