"""Rows from local ``.jsonl``, ``.json``, ``.parquet`` and ``.csv`` files.

Read here rather than through ``datasets`` builders so that a bad row is reported with
its file and position (a line number for JSON Lines and CSV, a row index otherwise), which
is what a person needs to fix a hand-made file, and so that nothing is written to the
datasets cache for a file that is already on disk.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kitchen.errors import ConfigError, NotFound

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def read_rows(path: Path, columns: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every row of a local file, each checked to be an object holding ``columns``."""
    if not path.is_file():
        raise NotFound(f"dataset file {path} does not exist; check the path")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return list(iter_jsonl(path, columns))
    readers = {".json": _read_json, ".parquet": _read_parquet, ".csv": _read_csv}
    if suffix not in readers:
        raise ConfigError(f"{path}: unsupported file type; use one of {', '.join(SUFFIXES)}")
    rows = readers[suffix](path)
    for index, row in enumerate(rows):
        check_row(row, path, f"row {index}", columns)
    return rows


def iter_jsonl(path: Path | str, columns: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """Rows of a JSON Lines file, one at a time; blank lines are skipped."""
    with open(path, encoding="utf-8") as f:
        index = 0
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"line {lineno} (row {index})"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problem = f"{where} is not valid JSON ({exc.msg})"
                raise ConfigError(f"{path}: {problem}; fix or remove it") from None
            check_row(row, path, where, columns)
            index += 1
            yield row


def check_row(row: Any, path: Path | str, where: str, columns: Sequence[str]) -> None:
    if not isinstance(row, dict):
        kind = type(row).__name__
        raise ConfigError(f"{path}: {where} is a {kind}, not an object; make every row an object")
    for column in columns:
        if row.get(column) is None:
            need = ", ".join(repr(c) for c in columns)
            raise ConfigError(f"{path}: {where} has no {column!r}; every row needs {need}")


def _read_json(path: Path) -> list[Any]:
    """A JSON array of rows; a file of JSON Lines named ``.json`` is read as such."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            return list(iter_jsonl(path))
        problem = f"line {exc.lineno} is not valid JSON ({exc.msg})"
        raise ConfigError(f"{path}: {problem}; fix it") from None
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON array of rows; wrap the rows in [ ]")
    return data


def _read_parquet(path: Path) -> list[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_table(path).to_pylist())
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None


def _read_csv(path: Path) -> list[Any]:
    """Typed like ``datasets`` reads CSV: numbers become numbers, empty cells None."""
    import pyarrow as pa
    import pyarrow.csv as pc

    try:
        table = pc.read_csv(path, convert_options=pc.ConvertOptions(strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        problem = _csv_problem(path) or _first_line(exc)
        raise ConfigError(f"{path}: {problem}; fix that line") from None
    return list(table.to_pylist())


def _csv_problem(path: Path) -> str | None:
    """The first record whose field count differs from the header's, by line number."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        for index, record in enumerate(reader):
            if record and len(record) != len(header):
                return (
                    f"line {reader.line_num} (row {index}) has {len(record)} fields"
                    f" but the header has {len(header)}"
                )
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
