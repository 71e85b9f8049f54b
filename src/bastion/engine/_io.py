"""Reading tables in fixed-size batches (Parquet, CSV) and writing Parquet deterministically.

Shared by both engines so that they cut and write batches the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bastion.errors import DataError

__all__ = ["ParquetSink", "TableSource", "open_source", "rechunk"]

_WRITE_OPTS: dict[str, Any] = {"compression": "zstd", "use_dictionary": True, "write_statistics": True}


# Ciphertext and tokens are high-entropy text: zstd and dictionaries spend CPU on them for little gain.
_HIGH_ENTROPY_OPERATORS = {"encrypt", "tokenize", "hash"}


def _write_options(schema: pa.Schema) -> dict[str, Any]:
    """Parquet options: zstd + dictionaries, except plain encoding for columns holding ciphertext/tokens."""
    raw = (schema.metadata or {}).get(b"bastion.protection")
    if not raw:
        return dict(_WRITE_OPTS)
    try:
        cols = json.loads(raw).get("columns", {})
    except ValueError:
        return dict(_WRITE_OPTS)
    plain = {n for n, c in cols.items() if c.get("operator") in _HIGH_ENTROPY_OPERATORS and c.get("scope") == "cell"}
    if not plain:
        return dict(_WRITE_OPTS)
    names = schema.names
    return {
        **_WRITE_OPTS,
        "compression": {n: ("none" if n in plain else "zstd") for n in names},
        "use_dictionary": [n for n in names if n not in plain],
    }


def rechunk(batches: Iterator[pa.RecordBatch], rows: int, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Yield batches of exactly ``rows`` rows (the last may be shorter), whatever the input cut."""
    pending: list[pa.RecordBatch] = []
    have = 0
    for b in batches:
        while b.num_rows:
            take = min(rows - have, b.num_rows)
            pending.append(b.slice(0, take))
            have += take
            b = b.slice(take)
            if have == rows:
                yield _combine(pending, schema)
                pending, have = [], 0
    if have:
        yield _combine(pending, schema)


def _combine(parts: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts, schema=schema).combine_chunks().to_batches()[0]


class TableSource:
    """A Parquet or CSV file read in batches; ``rows`` is known for Parquet, None for CSV."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"Input file {self.path} does not exist or is not a file.")
        self.size = self.path.stat().st_size
        if self.size == 0:
            raise DataError(f"Input file {self.path} is empty (0 bytes); expected a Parquet or CSV table.")
        self.format = _format(self.path)
        self.rows: int | None = None
        if self.format == "parquet":
            try:
                self._pf: pq.ParquetFile | None = pq.ParquetFile(self.path)
            except (pa.ArrowException, OSError) as e:
                raise DataError(
                    f"Input file {self.path} is not a readable Parquet file ({e}); it may be truncated or "
                    "corrupted. Re-export it and try again."
                ) from e
            self.schema = self._pf.schema_arrow
            self.rows = self._pf.metadata.num_rows
        else:
            self._pf = None
            self.schema = self._csv_reader().schema

    def _csv_reader(self) -> Any:
        try:
            # newlines_in_values: a quoted field holding a newline may straddle a block boundary.
            return pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(block_size=1 << 22),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
            )
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"Input file {self.path} is not a readable CSV file ({e}).") from e

    def batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        """Batches of exactly ``rows`` rows; read errors become ``DataError``."""
        try:
            if self._pf is not None:
                raw: Iterator[pa.RecordBatch] = self._pf.iter_batches(batch_size=rows)
            else:
                raw = iter(self._csv_reader())
            yield from rechunk(raw, rows, self.schema)
        except (pa.ArrowException, OSError) as e:
            raise DataError(
                f"Reading {self.path} failed ({e}); the file may be truncated, corrupted or hold a column of "
                "mixed types."
            ) from e

    def read_range(self, start: int, stop: int) -> pa.RecordBatch:
        """Rows ``[start, stop)`` of a Parquet file, reading only the row groups that hold them."""
        if self._pf is None:
            raise DataError("Random access needs a Parquet input; convert the CSV to Parquet first.")
        md = self._pf.metadata
        groups, offset, first = [], 0, None
        for g in range(md.num_row_groups):
            n = md.row_group(g).num_rows
            if offset + n > start and offset < stop:
                groups.append(g)
                first = offset if first is None else first
            offset += n
        try:
            table = self._pf.read_row_groups(groups) if groups else self.schema.empty_table()
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"Reading rows {start}-{stop} of {self.path} failed ({e}).") from e
        table = table.slice(start - (first or 0), stop - start).combine_chunks()
        batches = table.to_batches()
        if not batches:
            return pa.RecordBatch.from_pylist([], schema=self.schema)
        return batches[0]


def _format(path: Path) -> str:
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return "parquet"
    if suffixes.endswith((".csv", ".csv.gz")):
        return "csv"
    with path.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet"
    raise DataError(f"Cannot tell the format of {path}; expected a .parquet or .csv file.")


def open_source(path: Path | str) -> TableSource:
    """Open a table file for batch reading."""
    return TableSource(Path(path))


class ParquetSink:
    """Writes batches to a temporary file, one row group per batch, then renames it into place."""

    def __init__(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.partial")
        self.metadata = metadata or {}
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            extra = {k.encode(): v.encode() for k, v in self.metadata.items()}
            schema = batch.schema.with_metadata({**(batch.schema.metadata or {}), **extra})
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.tmp, schema, **_write_options(schema))
            self._schema = schema
        table = pa.Table.from_batches([batch]).replace_schema_metadata(self._schema.metadata)
        self._writer.write_table(table, row_group_size=max(batch.num_rows, 1))
        self.rows += batch.num_rows

    def close(self) -> int:
        """Finish the file; returns its size in bytes."""
        if self._writer is None:
            raise DataError("Nothing was written: the input has no rows.")
        self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)
