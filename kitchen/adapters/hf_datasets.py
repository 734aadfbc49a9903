"""Datasets from embedded sets, local files and hub repos, as ``datasets`` objects.

Every source ends up as a ``datasets.Dataset`` (or ``IterableDataset`` when streaming), so
stages shuffle, select, take and skip with the library people already know. What kitchen
adds is the errors: a bad row names its file and line, a missing split lists the ones
there are, and an uncached hub set while offline is one ``OfflineMiss`` line.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kitchen.adapters._local_rows import SUFFIXES, check_row, iter_jsonl, read_rows
from kitchen.errors import ConfigError, NotFound

_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?")


class HFDatasetStore:
    """The DatasetStore port over ``datasets`` (imported only when a set is loaded).

    Sources: ``kitchen/<name>`` (embedded), a local ``.jsonl/.json/.parquet/.csv`` file or a
    folder of ``<split>.<ext>`` files, or a hub repo ``org/name`` / ``org/name:config``.
    """

    def __init__(self, token: str | None = None) -> None:
        self._token = token

    def load(
        self,
        source: str,
        split: str = "train",
        *,
        streaming: bool = False,
        columns: Sequence[str] = (),
    ) -> Any:
        """Rows of one split; ``columns`` names fields every row must hold."""
        kind = _classify(source)
        if kind == "embedded":
            ds = _embedded(source, split)
        elif kind == "local":
            ds = _local(Path(source).expanduser(), split, streaming, columns)
        else:
            from kitchen.adapters._hub_datasets import load_hub

            ds = load_hub(source, split, streaming, self._token)
        if streaming and not _is_iterable(ds):
            ds = ds.to_iterable_dataset()
        return require_columns(ds, columns, source)

    def fingerprint(self, source: str, split: str = "train") -> str:
        """See ``rows_fingerprint``: the same rows give the same hex on every machine."""
        return rows_fingerprint(self.load(source, split))

    def answer_checker(self, source: str) -> Callable[[Mapping[str, Any], str], bool] | None:
        """Exact match on the reference answer for the embedded sets; None for others."""
        if _classify(source) != "embedded":
            return None
        from kitchen.embedded import datasets as embedded

        def check(row: Mapping[str, Any], completion: str) -> bool:
            return embedded.check_answer(source, dict(row), completion)

        return check


def rows_fingerprint(rows: Iterable[Mapping[str, Any]]) -> str:
    """sha256 of the rows written as JSON Lines: one line per row, in order, each line the
    row's JSON with sorted keys, ``,`` and ``:`` separators and non-ASCII kept, in UTF-8,
    ending in ``\\n``. Floats use Python's shortest repr; dates are ISO 8601 strings, bytes
    lowercase hex, decimals strings."""
    h = hashlib.sha256()
    for row in rows:
        text = json.dumps(
            row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
        )
        h.update(text.encode("utf-8") + b"\n")
    return h.hexdigest()


def require_columns(ds: Any, columns: Sequence[str], source: str) -> Any:
    """Return ``ds`` if every row holds ``columns`` (non-null); ConfigError names the first
    row that does not. A streamed dataset is checked row by row as it is read."""
    if not columns:
        return ds
    if _is_iterable(ds):
        kwargs = {"source": source, "columns": tuple(columns)}
        return ds.map(_check_streamed, with_indices=True, fn_kwargs=kwargs)
    absent = [c for c in columns if c not in ds.column_names]
    if absent:
        have = ", ".join(ds.column_names) or "none"
        raise ConfigError(
            f"{source}: rows have no {absent[0]!r} column (columns: {have});"
            " pick a dataset that has it"
        )
    _raise_on_first_null(ds, columns, source)
    return ds


def iter_batches(
    ds: Iterable[dict[str, Any]], batch_size: int, *, drop_last: bool = False
) -> Iterator[list[dict[str, Any]]]:
    """Rows in lists of ``batch_size`` (the last one shorter unless ``drop_last``)."""
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size} is not positive; use 1 or more")
    batch: list[dict[str, Any]] = []
    for row in ds:
        batch.append(row)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch and not drop_last:
        yield batch


# --------------------------------------------------------------------------- sources


def _classify(source: str) -> str:
    if source.startswith("kitchen/"):
        return "embedded"
    path = Path(source).expanduser()
    if path.suffix.lower() in SUFFIXES or source.startswith(("/", ".", "~")) or path.exists():
        return "local"
    if _HUB_NAME.fullmatch(source):
        return "hub"
    raise ConfigError(
        f"dataset source {source!r} is neither a file nor a hub repo;"
        " use a .jsonl/.json/.parquet/.csv path, 'org/name' or 'kitchen/<name>'"
    )


def _embedded(name: str, split: str) -> Any:
    from kitchen.embedded import datasets as embedded

    names = embedded.list_embedded()
    if name not in names:
        raise NotFound(f"no embedded dataset {name!r}; the embedded sets are {', '.join(names)}")
    try:
        rows = embedded.load_embedded(name, split)
    except NotFound as exc:  # the name is known, so it is the split: a config mistake
        raise ConfigError(str(exc)) from None
    return rows_to_dataset(rows, name)


def _local(path: Path, split: str, streaming: bool, columns: Sequence[str]) -> Any:
    file = _split_file(path, split)
    if streaming and file.suffix.lower() == ".jsonl":
        from datasets import IterableDataset

        # A tuple, not a list: datasets shards list-valued generator arguments.
        kwargs = {"path": str(file), "columns": tuple(columns)}
        return IterableDataset.from_generator(iter_jsonl, gen_kwargs=kwargs)
    return rows_to_dataset(read_rows(file, columns), str(file))


def _split_file(path: Path, split: str) -> Path:
    """A file is the split ``train``; a folder holds one ``<split>.<ext>`` file per split."""
    if not path.exists():
        raise NotFound(f"dataset file {path} does not exist; check the path")
    if not path.is_dir():
        if split != "train":
            raise ConfigError(
                f"{path} is one file, so its only split is 'train';"
                f" load the file that holds {split!r} instead"
            )
        return path
    found = {p.stem: p for p in sorted(path.iterdir()) if p.suffix.lower() in SUFFIXES}
    if split not in found:
        have = ", ".join(sorted(found)) or "none"
        raise ConfigError(
            f"{path} has no split {split!r} (splits: {have});"
            " name the files <split>.jsonl, .json, .parquet or .csv"
        )
    return found[split]


def rows_to_dataset(rows: Sequence[Mapping[str, Any]], source: str) -> Any:
    """A Dataset whose columns are every key seen in any row (absent ones are None)."""
    import pyarrow as pa
    from datasets import Dataset

    columns = list(dict.fromkeys(k for row in rows for k in row))
    data = {c: [row.get(c) for row in rows] for c in columns}
    try:
        return Dataset.from_dict(data)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        bad = next(c for c in columns if not _one_type(data[c]))
        where = _first_odd_row(data[bad])
        at = f" (row {where} differs from the rows before it)" if where is not None else ""
        raise ConfigError(
            f"{source}: column {bad!r} mixes value types{at}; give every row the same type there"
        ) from None


def _first_odd_row(values: list[Any]) -> int | None:
    """The first row whose value is of another Python type than the first non-null one's."""
    first = next((type(v) for v in values if v is not None), None)
    return next((i for i, v in enumerate(values) if v is not None and type(v) is not first), None)


def _one_type(values: list[Any]) -> bool:
    import pyarrow as pa

    try:
        pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


# --------------------------------------------------------------------------- checks


def _raise_on_first_null(ds: Any, columns: Sequence[str], source: str) -> None:
    import pyarrow.compute as pc

    table = ds.select_columns(list(columns)).with_format("arrow")[:]
    firsts = [
        (pc.index(table.column(c).is_null(), True).as_py(), c)
        for c in columns
        if table.column(c).null_count
    ]
    if firsts:
        index, column = min(firsts)
        need = ", ".join(repr(c) for c in columns)
        raise ConfigError(f"{source}: row {index} has no {column!r}; every row needs {need}")


def _check_streamed(
    row: dict[str, Any], index: int, source: str, columns: tuple[str, ...]
) -> dict[str, Any]:
    check_row(row, source, f"row {index}", columns)
    return row


def _is_iterable(ds: Any) -> bool:
    from datasets import IterableDataset

    return isinstance(ds, IterableDataset)


def _plain(value: Any) -> Any:
    """JSON stand-ins for the non-JSON values ``datasets`` rows can hold."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise ConfigError(
        f"cannot fingerprint a {type(value).__name__} value; "
        "convert that column to text or numbers first"
    )


__all__ = [
    "HFDatasetStore",
    "iter_batches",
    "require_columns",
    "rows_fingerprint",
    "rows_to_dataset",
]


def create_store(config: Any, home: Path) -> HFDatasetStore:
    """The manifest's factory: the hub token from the recipe's ``hf_token`` when it has one."""
    token = getattr(config, "hf_token", None)
    return HFDatasetStore(token=token.get_secret_value() if token is not None else None)
