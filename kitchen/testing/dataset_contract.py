"""The DatasetStore contract, run offline on files written by the tests themselves.

Subclass ``DatasetStoreContract`` and override the ``dataset_store`` fixture. Every test
runs with HF_HOME in a temp folder and HF_HUB_OFFLINE set; hub sets come from a cache
laid out by ``build_hub_cache``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kitchen.errors import ConfigError, NotFound, OfflineMiss
from kitchen.ports import DatasetStore
from kitchen.testing.hub_contract import build_hub_cache, isolate_hf_env

ROWS: list[dict[str, Any]] = [
    {"id": 1, "prompt": "What is two plus two?", "answer": "four"},
    {"id": 2, "prompt": "Reverse abc.", "answer": "cba"},
    {"id": 3, "prompt": "Say hi, politely.", "answer": "Hello there!"},
]
ROWS_JSONL = (
    b'{"answer":"four","id":1,"prompt":"What is two plus two?"}\n'
    b'{"answer":"cba","id":2,"prompt":"Reverse abc."}\n'
    b'{"answer":"Hello there!","id":3,"prompt":"Say hi, politely."}\n'
)
"""ROWS as canonical JSON Lines, written out by hand: their fingerprint is its sha256."""
FORMATS = ("jsonl", "json", "parquet", "csv")


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows in the format the suffix names, with the plain tools of each format."""
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(list(rows), indent=1))
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(rows)), path)
    elif suffix == ".csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


class DatasetStoreContract:
    __test__ = False

    @pytest.fixture
    def dataset_store(self) -> DatasetStore:
        raise NotImplementedError("override dataset_store")

    @pytest.fixture(autouse=True)
    def hf_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        home = tmp_path / "hf"
        isolate_hf_env(monkeypatch, home)
        return home

    def test_satisfies_the_port(self, dataset_store: DatasetStore) -> None:
        assert isinstance(dataset_store, DatasetStore)

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_loads_every_local_format(
        self, dataset_store: DatasetStore, tmp_path: Path, fmt: str
    ) -> None:
        ds = dataset_store.load(str(write_rows(tmp_path / f"rows.{fmt}", ROWS)))
        assert len(ds) == 3
        assert [dict(r) for r in ds] == ROWS
        assert ds[1] == ROWS[1]

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_fingerprint_is_the_sha256_of_canonical_rows(
        self, dataset_store: DatasetStore, tmp_path: Path, fmt: str
    ) -> None:
        path = write_rows(tmp_path / f"rows.{fmt}", ROWS)
        assert dataset_store.fingerprint(str(path)) == hashlib.sha256(ROWS_JSONL).hexdigest()

    def test_fingerprint_follows_order_and_content(
        self, dataset_store: DatasetStore, tmp_path: Path
    ) -> None:
        base = dataset_store.fingerprint(str(write_rows(tmp_path / "a.jsonl", ROWS)))
        swapped = write_rows(tmp_path / "b.jsonl", [ROWS[1], ROWS[0], ROWS[2]])
        edited = write_rows(tmp_path / "c.jsonl", [*ROWS[:2], {**ROWS[2], "answer": "Hi!"}])
        assert (
            len(
                {
                    base,
                    dataset_store.fingerprint(str(swapped)),
                    dataset_store.fingerprint(str(edited)),
                }
            )
            == 3
        )

    def test_select_shuffle_take_skip(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        ds = dataset_store.load(str(write_rows(tmp_path / "rows.jsonl", ROWS)))
        assert list(ds.select([2, 0])) == [ROWS[2], ROWS[0]]
        once, again = ds.shuffle(seed=7), ds.shuffle(seed=7)
        assert list(once) == list(again)
        assert sorted(r["id"] for r in once) == [1, 2, 3]
        assert list(ds.take(2)) == ROWS[:2] and list(ds.skip(2)) == ROWS[2:]

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_streaming(self, dataset_store: DatasetStore, tmp_path: Path, fmt: str) -> None:
        path = write_rows(tmp_path / f"rows.{fmt}", ROWS)
        stream = dataset_store.load(str(path), streaming=True)
        assert not hasattr(stream, "__len__")
        assert list(stream) == ROWS
        assert list(stream.skip(1).take(1)) == [ROWS[1]]

    def test_bad_jsonl_line_names_the_file_and_line(
        self, dataset_store: DatasetStore, tmp_path: Path
    ) -> None:
        path = tmp_path / "bad.jsonl"
        path.write_text('{"id": 1}\n\n{"id": 2\n{"id": 3}\n')
        with pytest.raises(ConfigError, match=r"bad\.jsonl: line 3 \(row 1\) is not valid JSON"):
            dataset_store.load(str(path))

    def test_non_object_row_names_the_row(
        self, dataset_store: DatasetStore, tmp_path: Path
    ) -> None:
        path = tmp_path / "bad.json"
        path.write_text('[{"id": 1}, 2]')
        with pytest.raises(ConfigError, match=r"bad\.json: row 1 is a int, not an object"):
            dataset_store.load(str(path))

    def test_ragged_csv_names_the_line(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        path = tmp_path / "bad.csv"
        path.write_text("id,answer\n1,four\n2,cba,extra\n")
        with pytest.raises(ConfigError, match=r"bad\.csv: line 3 \(row 1\) has 3 fields"):
            dataset_store.load(str(path))

    def test_missing_file_is_not_found(self, dataset_store: DatasetStore, tmp_path: Path) -> None:
        with pytest.raises(NotFound, match=r"absent\.jsonl"):
            dataset_store.load(str(tmp_path / "absent.jsonl"))

    def test_a_folder_holds_one_file_per_split(
        self, dataset_store: DatasetStore, tmp_path: Path
    ) -> None:
        write_rows(tmp_path / "train.jsonl", ROWS[:2])
        write_rows(tmp_path / "test.csv", ROWS[2:])
        assert list(dataset_store.load(str(tmp_path), "test")) == ROWS[2:]
        with pytest.raises(ConfigError, match=r"no split 'validation' \(splits: test, train\)"):
            dataset_store.load(str(tmp_path), "validation")
        with pytest.raises(ConfigError, match="only split is 'train'"):
            dataset_store.load(str(tmp_path / "train.jsonl"), "test")

    def test_cached_hub_set_loads_offline(self, dataset_store: DatasetStore, hf_home: Path) -> None:
        files = {"data/train.jsonl": ROWS_JSONL, "data/test.jsonl": ROWS_JSONL.splitlines()[0]}
        build_hub_cache(hf_home, "org/toy", files, repo_type="dataset")
        assert list(dataset_store.load("org/toy")) == ROWS
        assert list(dataset_store.load("org/toy", "test")) == ROWS[:1]
        assert list(dataset_store.load("org/toy", streaming=True)) == ROWS
        assert dataset_store.fingerprint("org/toy") == hashlib.sha256(ROWS_JSONL).hexdigest()
        with pytest.raises(ConfigError, match="no split 'dev'; its splits are train, test"):
            dataset_store.load("org/toy", "dev")

    def test_uncached_hub_set_is_an_offline_miss(self, dataset_store: DatasetStore) -> None:
        with pytest.raises(OfflineMiss) as caught:
            dataset_store.load("org/absent")
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith("dataset 'org/absent' is not in the local cache (HF_HOME=")
        assert "the hub cannot be reached" in message

    def test_every_embedded_set_loads_by_name(self, dataset_store: DatasetStore) -> None:
        from kitchen.embedded.datasets import list_embedded

        for name in list_embedded():
            ds = dataset_store.load(name)
            assert len(ds) > 0 and isinstance(ds[0], dict), name
            assert dataset_store.fingerprint(name) == dataset_store.fingerprint(name)
