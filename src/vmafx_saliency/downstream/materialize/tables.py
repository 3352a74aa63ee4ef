"""Tables: JSONL and Parquet read in, and written back with the saliency columns.

The format comes from the file's suffix. A JSONL table is a list of dicts (one
JSON object per line); a Parquet table stays a pyarrow Table, so every other
column keeps its type, metadata and place. Our columns are replaced in place
or appended, and the output is written atomically. pyarrow is imported only
when a Parquet table is read or written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from vmafx_saliency._json import json_loads
from vmafx_saliency._util import atomic_writer, require
from vmafx_saliency.downstream.materialize.records import MEAN_COLUMN, OUR_COLUMNS, VAR_COLUMN
from vmafx_saliency.errors import InputFileError, MaterializeError

TableFormat = Literal["jsonl", "parquet"]

SUFFIX_FORMATS: Mapping[str, TableFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def table_format(path: Path, *, role: str) -> TableFormat:
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(SUFFIX_FORMATS)
        raise MaterializeError(
            f"{role} {path}: unknown table suffix {path.suffix or '(none)'!r}: "
            f"name a JSONL or Parquet file ({known})"
        )
    return fmt


class _Table:
    """A table read from JSONL (a list of dicts) or Parquet (a pyarrow Table)."""

    def __init__(
        self, path: Path, *, rows: list[dict[str, Any]] | None = None, arrow: Any = None
    ) -> None:
        self.path = path
        self.rows = rows
        self.arrow = arrow

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else int(self.arrow.num_rows)

    def has_column(self, name: str) -> bool:
        if self.rows is not None:
            return any(name in row for row in self.rows)
        return name in self.arrow.column_names

    def columns(self) -> list[str]:
        if self.rows is None:
            return list(self.arrow.column_names)
        names: dict[str, None] = {}
        for row in self.rows:
            names.update(dict.fromkeys(row))
        return list(names)

    def column(self, name: str) -> list[Any]:
        """The column's values as Python objects; None where a row lacks it."""
        if self.rows is not None:
            return [row.get(name) for row in self.rows]
        if name not in self.arrow.column_names:
            return [None] * len(self)
        return list(self.arrow.column(name).to_pylist())


def _read_jsonl(path: Path) -> _Table:
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue  # blank lines (a trailing newline) are not rows
                try:
                    row = json_loads(line)
                except json.JSONDecodeError as exc:
                    raise MaterializeError(
                        f"{path}: line {number} is not valid JSON ({exc.msg}): fix the line; "
                        "a JSONL table holds one JSON object per line"
                    ) from exc
                if not isinstance(row, dict):
                    raise MaterializeError(
                        f"{path}: line {number} is a JSON {type(row).__name__}, not an object: "
                        "a JSONL table holds one JSON object per line"
                    )
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise MaterializeError(f"{path}: not UTF-8 text ({exc}): is it a JSONL file?") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return _Table(path, rows=rows)


def _parquet() -> Any:
    return require("pyarrow.parquet", purpose="reading and writing Parquet tables", extra="table")


def _read_parquet(path: Path) -> _Table:
    pq = _parquet()
    try:
        arrow = pq.read_table(path)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read as Parquet ({exc})") from exc
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise MaterializeError(f"{path}: not a readable Parquet file ({exc})") from exc
    return _Table(path, arrow=arrow)


def read_table(path: Path) -> _Table:
    if not path.is_file():
        raise InputFileError(f"{path}: no such table: check --input")
    if table_format(path, role="--input") == "parquet":
        return _read_parquet(path)
    return _read_jsonl(path)


def _json_default(value: object) -> object:
    """Parquet values JSON has no type for: dates and times as ISO text, decimals as text."""
    import datetime as dt
    import decimal

    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"a {type(value).__name__} value")


def _write_jsonl(rows: Iterable[Mapping[str, Any]], path: Path) -> None:
    with atomic_writer(path) as fh:
        for row in rows:
            try:
                line = json.dumps(row, ensure_ascii=False, default=_json_default)
            except TypeError as exc:
                raise MaterializeError(
                    f"{path}: JSON cannot hold {exc}: write a .parquet output instead"
                ) from exc
            fh.write(line.encode("utf-8") + b"\n")


def _arrow_type(pa: Any, name: str) -> Any:
    return pa.float64() if name in (MEAN_COLUMN, VAR_COLUMN) else pa.string()


def _arrow_column(table: _Table, name: str) -> Any:
    """One column of a JSONL table as an Arrow array, or an error that names the column."""
    pa = require("pyarrow", purpose="writing Parquet tables", extra="table")
    try:
        return pa.array([row.get(name) for row in table.rows or []])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MaterializeError(
            f"{table.path}: column {name!r} cannot become a Parquet column ({exc}): give it "
            "one type in every row, or write a .jsonl output"
        ) from exc


def check_parquet_columns(table: _Table, output: Path) -> None:
    """Before any clip is computed: the table's own columns must fit a Parquet output."""
    if table.arrow is not None or table_format(output, role="--output") != "parquet":
        return
    for name in table.columns():
        if name not in OUR_COLUMNS:  # ours are written with their own types
            _arrow_column(table, name)


def _write_parquet(table: _Table, new: Mapping[str, list[Any]], path: Path) -> None:
    pa = require("pyarrow", purpose="writing Parquet tables", extra="table")
    pq = _parquet()
    try:
        if table.arrow is not None:
            arrow = table.arrow
            for name, values in new.items():
                # Replace our columns in place (same position) or append them at the end.
                array = pa.array(values, type=_arrow_type(pa, name))
                index = arrow.schema.get_field_index(name)
                old = arrow.schema.field(index) if index >= 0 else None
                column = pa.field(name, array.type, metadata=old.metadata if old else None)
                if index >= 0:
                    arrow = arrow.set_column(index, column, array)
                else:
                    arrow = arrow.append_column(column, array)
        else:
            names = table.columns() + [n for n in new if not table.has_column(n)]
            data = {}
            for name in names:
                if name in new:
                    data[name] = pa.array(new[name], type=_arrow_type(pa, name))
                else:
                    data[name] = _arrow_column(table, name)
            arrow = pa.table(data)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MaterializeError(
            f"{table.path}: a column cannot become a Parquet column ({exc}): give it one type "
            "in every row, or write a .jsonl output"
        ) from exc
    with atomic_writer(path) as fh:
        pq.write_table(arrow, fh)


def write_table(table: _Table, new: Mapping[str, list[Any]], path: Path) -> None:
    """Write the table with the new columns, in the format the output's suffix names."""
    if table_format(path, role="--output") == "parquet":
        _write_parquet(table, new, path)
        return
    rows = table.rows if table.rows is not None else table.arrow.to_pylist()
    for index, row in enumerate(rows):
        for name, values in new.items():
            row[name] = values[index]  # existing keys keep their place; new ones go last
    _write_jsonl(rows, path)
