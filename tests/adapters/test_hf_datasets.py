"""What HFDatasetStore adds beyond the port: required columns, batching, source checks,
and the hub path when the hub is down or says no."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from kitchen.adapters.hf_datasets import HFDatasetStore, iter_batches, require_columns
from kitchen.errors import ConfigError, NotFound, OfflineMiss
from kitchen.testing.dataset_contract import ROWS, ROWS_JSONL, write_rows
from kitchen.testing.hub_contract import build_hub_cache, isolate_hf_env

GAPPED = [ROWS[0], {"id": 2, "prompt": "Reverse abc.", "answer": None}, ROWS[2]]


@pytest.fixture(autouse=True)
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_hf_env(monkeypatch, tmp_path / "hf")
    return tmp_path / "hf"


@pytest.mark.parametrize(
    ("fmt", "where"),
    [("jsonl", "line 2 (row 1)"), ("json", "row 1"), ("parquet", "row 1"), ("csv", "row 1")],
)
def test_a_row_without_a_required_field_is_named(tmp_path: Path, fmt: str, where: str) -> None:
    path = write_rows(tmp_path / f"gapped.{fmt}", GAPPED)
    with pytest.raises(ConfigError) as caught:
        HFDatasetStore().load(str(path), columns=["prompt", "answer"])
    expected = f"{path}: {where} has no 'answer'; every row needs 'prompt', 'answer'"
    assert str(caught.value) == expected


def test_required_fields_are_checked_while_streaming(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "gapped.jsonl", GAPPED)
    stream = HFDatasetStore().load(str(path), streaming=True, columns=["answer"])
    with pytest.raises(ConfigError, match=r"line 2 \(row 1\) has no 'answer'"):
        list(stream)


def test_require_columns_counts_rows_as_the_dataset_shows_them() -> None:
    from datasets import Dataset

    ds = Dataset.from_list(GAPPED).select([1, 0, 2])
    with pytest.raises(ConfigError, match=r"^src: row 0 has no 'answer'"):
        require_columns(ds, ["answer"], "src")
    assert require_columns(ds.select([1, 2]), ["answer"], "src") is not None
    with pytest.raises(ConfigError, match=r"no 'messages' column \(columns: id, prompt, answer\)"):
        require_columns(ds, ["messages"], "src")
    stream = ds.to_iterable_dataset()
    with pytest.raises(ConfigError, match=r"^src: row 0 has no 'answer'"):
        list(require_columns(stream, ["answer"], "src"))


def test_iter_batches() -> None:
    assert list(iter_batches(ROWS, 2)) == [ROWS[:2], ROWS[2:]]
    assert list(iter_batches(ROWS, 2, drop_last=True)) == [ROWS[:2]]
    with pytest.raises(ConfigError, match="batch size 0"):
        list(iter_batches(ROWS, 0))


def test_mixed_types_in_a_column_are_named(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "mixed.jsonl", [{"id": 1, "x": 5}, {"id": 2, "x": "five"}])
    with pytest.raises(ConfigError, match="column 'x' mixes value types"):
        HFDatasetStore().load(str(path))


def test_rows_with_different_keys_share_every_column(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "ragged.jsonl", [{"a": 1}, {"b": "x"}])
    assert list(HFDatasetStore().load(str(path))) == [{"a": 1, "b": None}, {"a": None, "b": "x"}]


def test_fingerprint_writes_timestamps_as_iso_text(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "t.parquet", [{"t": dt.datetime(2024, 1, 2, 3, 4, 5)}])
    expected = hashlib.sha256(b'{"t":"2024-01-02T03:04:05"}\n').hexdigest()
    assert HFDatasetStore().fingerprint(str(path)) == expected


def test_home_relative_paths_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_rows(tmp_path / "rows.jsonl", ROWS)
    assert list(HFDatasetStore().load("~/rows.jsonl")) == ROWS


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ("org/name/extra", ConfigError, "neither a file nor a hub repo"),
        ("notes.txt", ConfigError, "unsupported file type"),
    ],
)
def test_sources_that_cannot_be_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(error, match=message):
        HFDatasetStore().load(source)


def test_cached_hub_set_loads_while_the_hub_is_down(hub_down: Path) -> None:
    build_hub_cache(hub_down, "org/toy", {"data/train.jsonl": ROWS_JSONL}, repo_type="dataset")
    assert list(HFDatasetStore().load("org/toy")) == ROWS
    with pytest.raises(OfflineMiss, match=r"^dataset 'org/absent' .* cannot be reached \(http://"):
        HFDatasetStore().load("org/absent")


def test_hub_saying_no_such_set_is_not_found(fake_hub: tuple[str, list[str]]) -> None:
    with pytest.raises(NotFound, match="dataset 'org/absent' is not on the hub"):
        HFDatasetStore().load("org/absent")


def test_embedded_sets_load_by_name() -> None:
    from kitchen.embedded.datasets import load_embedded

    ds = HFDatasetStore().load("kitchen/arith-chat", "test", columns=["messages"])
    assert list(ds) == load_embedded("kitchen/arith-chat", "test")
    assert [m["role"] for m in ds[0]["messages"]] == ["user", "assistant"]
    with pytest.raises(NotFound, match="no embedded dataset 'kitchen/nope'"):
        HFDatasetStore().load("kitchen/nope")
    with pytest.raises(ConfigError, match=r"'dev'.*train, test"):
        HFDatasetStore().load("kitchen/arith-chat", "dev")
