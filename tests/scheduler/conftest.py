"""The scheduler tests' fixture: a real one-node SLURM cluster (``kitchen.testing.slurm``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kitchen.testing.slurm import Slurm, missing, start_cluster


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    why = missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}: .ci/run installs slurm-wlm and munge")
        pytest.skip(why)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()
