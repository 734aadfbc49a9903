"""A random tiny Llama for the backend tests, built once per session.

The suite does not depend on the shipped model: its weights come from a fixed seed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.tiny_llama import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def local_client(tiny_model_dir: Path) -> Iterator[Callable[..., Any]]:
    """A factory of CPU training clients on the tiny model; closes them after the test."""
    from kitchen.adapters.local_torch import create_training_client

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        settings: dict[str, Any] = {"model_name": str(tiny_model_dir), "lora_rank": 4}
        settings.update({"device": "cpu", **kwargs})
        made.append(create_training_client(**settings))
        return made[-1]

    yield make
    for client in made:
        client.close()
