"""The build script: packing, schedule, and byte-identical rebuilds (reduced, for speed)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kitchen.embedded.pretrain import PretrainSettings, lr_at, pack_rows


def test_pack_rows_keeps_documents_whole_and_pads() -> None:
    docs = [[1, 7, 2], [1, 8, 8, 2], [1, 9, 2]]
    assert pack_rows(docs, 6, 0) == [[1, 7, 2, 0, 0, 0], [1, 8, 8, 2, 0, 0], [1, 9, 2, 0, 0, 0]]


def test_pack_rows_fills_a_row_exactly() -> None:
    assert pack_rows([[1, 2], [3, 4], [5]], 4, 0) == [[1, 2, 3, 4], [5, 0, 0, 0]]


def test_pack_rows_refuses_a_document_longer_than_a_row() -> None:
    with pytest.raises(ValueError, match="5 > 4 tokens"):
        pack_rows([[1, 2, 3, 4, 5]], 4, 0)


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    s = PretrainSettings(steps=100, learning_rate=1e-3, warmup_steps=10)
    assert lr_at(0, s) == pytest.approx(1e-4)  # 1/10 of the rate, cosine still at 1
    assert lr_at(9, s) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert lr_at(50, s) == pytest.approx(5e-4)
    assert lr_at(99, s) < 1e-6


@pytest.mark.slow
def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    from kitchen.embedded.build_tiny import build

    first, second = tmp_path / "a", tmp_path / "b"
    build(first, PretrainSettings(steps=3))
    build(second, PretrainSettings(steps=3))
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert len(names) == 6
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
