"""The local backend's data-parallel pieces that need no second process: the shares of a
batch, and the digest check that fails a run whose processes hold different states (the
Collectives port stands in for the other process: its contract is tested on real ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitchen.adapters.local_torch.data_parallel import check_same_state, share, state_digest
from kitchen.errors import RanksDiverged


@pytest.mark.parametrize(
    ("n", "world", "shares"),
    [
        (8, 2, [(0, 4), (4, 8)]),
        (7, 2, [(0, 3), (3, 7)]),
        (5, 3, [(0, 1), (1, 3), (3, 5)]),
        (1, 2, [(0, 0), (0, 1)]),
    ],
)
def test_shares_are_contiguous_and_cover_the_batch(
    n: int, world: int, shares: list[tuple[int, int]]
) -> None:
    got = [share(n, r, world) for r in range(world)]
    assert got == shares
    assert sum(hi - lo for lo, hi in got) == n


class _Peers:
    """Rank 0 of two, whose peer reports ``theirs`` as its digest."""

    rank, world_size, backend = 0, 2, "test"

    def __init__(self, theirs: str) -> None:
        self.theirs = theirs

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj, self.theirs]


def _state(folder: Path, weights: bytes) -> Path:
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(weights)
    (folder / "optimizer.safetensors").write_bytes(b"moments")
    return folder


def test_the_same_state_passes_and_another_fails_the_run(tmp_path: Path) -> None:
    mine = _state(tmp_path / "a", b"weights")
    other = _state(tmp_path / "b", b"weights, one bit off")
    check_same_state(_Peers(state_digest(mine)), mine, step=4)  # type: ignore[arg-type]
    with pytest.raises(RanksDiverged, match=r"at step 4 .* rank\(s\) 1 differ from rank 0's"):
        check_same_state(_Peers(state_digest(other)), mine, step=4)  # type: ignore[arg-type]
