"""Running out of memory ends the attempt as a fault of its own (exit 71), resumable only with
other operating settings.

The fake workflow's hook raises what the local backend raises when an allocator fails
(``OutOfMemory``, built from torch's own error by ``kitchen/adapters/local_torch/memory.py``);
the runner, SQLite, the fold and the resume check are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakeflow import RUN_ID, FakeConfig, created, folded, make_runner

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.cli.show import describe
from kitchen.engine import launch
from kitchen.engine.runner import StageContext
from kitchen.errors import ConfigError, OutOfMemory
from kitchen.store import EventStore

CONFIG = FakeConfig(steps=6, save_every=2)
ADVICE = "lower max_tokens_per_microbatch (now 16384) or set gradient_checkpointing=true"


def _oom(ctx: StageContext[Any, Any]) -> None:
    raise OutOfMemory(f"out of memory in forward_backward (DefaultCPUAllocator): {ADVICE}")


def test_out_of_memory_is_a_fault_of_its_own(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    runner = make_runner(store, home, config=CONFIG, hooks={("train", 3): _oom}, blobs=blobs)
    assert runner.start(created(RUN_ID, CONFIG)) == 71

    last = store.read(RUN_ID)[-1]
    assert last.type == "AttemptInterrupted"
    assert (last.payload["fault"], last.payload["stage"]) == ("out_of_memory", "train")
    assert ADVICE in last.payload["reason"]
    state = folded(store)
    assert state.status == "interrupted"  # resumable, not failed
    assert state.fault is not None and state.fault[0] == "out_of_memory"
    shown = "\n".join(describe(state, "interrupted", home))
    assert "stopped by a fault (out_of_memory)" in shown
    assert "lower max_tokens_per_microbatch or set gradient_checkpointing=true" in shown

    # the same settings would fail the same way: refused in one line; another setting goes
    with pytest.raises(ConfigError) as refused:
        launch._check_out_of_memory(RUN_ID, state, [])
    assert "\n" not in str(refused.value)
    assert "ran out of memory with these settings" in str(refused.value)
    assert "max_tokens_per_microbatch=" in str(refused.value)
    launch._check_out_of_memory(RUN_ID, state, ["max_tokens_per_microbatch 16384 -> 4096"])


def test_a_crashed_run_says_what_probably_happened(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    runner = make_runner(store, home, config=CONFIG, blobs=blobs)
    assert runner.start(created(RUN_ID, CONFIG)) == 0
    shown = "\n".join(describe(folded(store), "crashed", home))
    assert "SIGKILL, which is how the kernel's OOM killer and a cgroup memory limit" in shown
