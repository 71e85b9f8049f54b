"""Column-at-a-time, chunked access to tabular inputs (pandas, pyarrow, Parquet paths or globs, a filtered
prediction log), so drift statistics hold one column chunk of each side in memory, never the whole table.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from bastion.errors import DataError

__all__ = ["CHUNK_ROWS", "TableSource", "expand_paths"]

CHUNK_ROWS = 262_144  # rows per chunk when a column is streamed (one chunk of one column at a time)

# pandas' inferred kinds of object columns -> the Arrow type a column is read as.
_OBJECT_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "empty": pa.null(),
    "boolean": pa.bool_(),
    "integer": pa.int64(),
    "floating": pa.float64(),
    "mixed-integer-float": pa.float64(),
    "decimal": pa.float64(),
}


_TEXT_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".ndjson")


def _read_text_tables(paths: list[str]) -> pa.Table:
    """CSV or JSON-lines files as one Arrow table (read whole: text files have no column index)."""
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson

    tables = []
    for p in paths:
        try:
            if ".csv" in p.lower():
                tables.append(pacsv.read_csv(p))
            else:
                tables.append(pajson.read_json(p))
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"Cannot read {p}: {e}. Check that it is valid CSV/JSON lines.") from e
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataError(f"The files {paths} do not share one schema: {e}.") from e


def expand_paths(spec: str | Path | Sequence[str | Path]) -> list[str]:
    """Expand a path, a glob or a list of them into existing Parquet files (sorted, de-duplicated)."""
    items = [spec] if isinstance(spec, str | Path) else list(spec)
    out: list[str] = []
    for item in items:
        s = str(item)
        if any(ch in s for ch in "*?["):
            out.extend(sorted(glob.glob(s, recursive=True)))
        elif os.path.isdir(s):
            out.extend(sorted(glob.glob(os.path.join(s, "**", "*.parquet"), recursive=True)))
        elif os.path.exists(s):
            out.append(s)
        else:
            raise DataError(f"Input {s!r} does not exist. Give a Parquet or CSV file, a folder or a glob.")
    seen: set[str] = set()
    files = [f for f in out if not (f in seen or seen.add(f))]  # type: ignore[func-returns-value]
    if not files:
        raise DataError(f"No Parquet files match {spec!r}. Check the path or glob.")
    return files


def _frame_schema(df: pd.DataFrame) -> pa.Schema:
    """Arrow types of a DataFrame's columns without converting its data (object columns are inferred)."""
    schema = pa.Schema.from_pandas(df.iloc[:0], preserve_index=False)
    fields = []
    for f in schema:
        col = df[f.name]
        if col.dtype == object:
            kind = pd.api.types.infer_dtype(col, skipna=True)
            if kind not in _OBJECT_TYPES:
                raise DataError(
                    f"Cannot convert column {f.name!r} to Arrow: its values are {kind!r}. Give columns one type each."
                )
            f = f.with_type(_OBJECT_TYPES[kind])
        fields.append(f)
    return pa.schema(fields)


class TableSource:
    """A table whose columns are read one at a time, in chunks of ``CHUNK_ROWS`` rows.

    Wraps a pandas DataFrame (converted one column chunk at a time, never as a whole), a pyarrow
    Table, or Parquet files (read lazily, one column at a time, optionally through a row filter).
    Picklable, so Dask workers can read their own columns from shared storage.
    """

    def __init__(
        self,
        *,
        table: pa.Table | None = None,
        frame: pd.DataFrame | None = None,
        paths: list[str] | None = None,
        rename: dict[str, str] | None = None,
        filter: Any = None,
        unify: bool = False,
    ) -> None:
        self._table = table
        self._frame = frame
        self.paths = paths
        self.filter = filter
        self._unify = unify
        self._dataset: pads.Dataset | None = None
        self._stored: dict[str, str] = {}
        if table is not None:
            self.schema = table.schema
            self.num_rows = table.num_rows
        elif frame is not None:
            self.schema = _frame_schema(frame)
            self.num_rows = len(frame)
        else:
            try:
                ds = self._ds()
                self.schema = ds.schema
                self.num_rows = int(ds.count_rows(filter=filter) if filter is not None else ds.count_rows())
            except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
                raise DataError(f"Cannot read Parquet input {paths}: {e}. Give Parquet files, or CSV/JSONL files "
                                "named .csv/.jsonl.") from e
        if rename:
            # Expose stored columns under other names (e.g. the log's "in.age" as "age").
            fields = []
            for f in self.schema:
                new = rename.get(f.name, f.name)
                self._stored[new] = f.name
                fields.append(f.with_name(new))
            self.schema = pa.schema(fields)

    @classmethod
    def from_any(cls, obj: Any) -> TableSource:
        """Build from a DataFrame, a pyarrow Table, a TableSource, or a path/glob/list of paths."""
        if isinstance(obj, TableSource):
            return obj
        if isinstance(obj, pd.DataFrame):
            if len(set(map(str, obj.columns))) != obj.shape[1]:
                raise DataError("The DataFrame has duplicate column names; give each column a unique name.")
            if not all(isinstance(c, str) for c in obj.columns):
                obj = obj.rename(columns=str)
            try:
                return cls(frame=obj)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise DataError(f"Cannot convert the DataFrame to Arrow: {e}. Give columns one type each.") from e
        if isinstance(obj, pa.Table):
            return cls(table=obj)
        if isinstance(obj, str | Path) or (isinstance(obj, list | tuple) and obj and isinstance(obj[0], str | Path)):
            paths = expand_paths(obj)
            text = [p for p in paths if p.lower().endswith(_TEXT_SUFFIXES)]
            if text and len(text) != len(paths):
                raise DataError(f"Give either CSV/JSONL files or Parquet files, not both; got {paths}.")
            if text:
                return cls(table=_read_text_tables(text))
            return cls(paths=paths)
        raise DataError(
            f"Expected a pandas DataFrame, a pyarrow Table or Parquet path(s); got {type(obj).__name__}."
        )

    @classmethod
    def from_log(
        cls, files: Sequence[str | Path], *, filter: Any = None, rename: dict[str, str] | None = None
    ) -> TableSource:
        """Prediction-log files (their schemas unified) seen through a row ``filter``, columns renamed."""
        return cls(paths=[str(f) for f in files], filter=filter, rename=rename, unify=True)

    def renamed(self, rename: dict[str, str]) -> TableSource:
        """The same data with columns exposed under new names (``{stored: new}``)."""
        return TableSource(
            table=self._table, frame=self._frame, paths=self.paths, rename=rename, filter=self.filter,
            unify=self._unify,
        )

    def _ds(self) -> pads.Dataset:
        if self._dataset is None:
            assert self.paths is not None
            schema = None
            if self._unify and len(self.paths) > 1:
                try:
                    schema = pa.unify_schemas([pq.read_schema(p) for p in self.paths], promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                    raise DataError(f"The files disagree on column types: {e}.") from e
            ds = pads.dataset(self.paths, format="parquet", schema=schema)
            strings = [f.name for f in ds.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            if strings and schema is None:
                # Read text columns dictionary-encoded: no per-row strings, and counting is a bincount.
                fmt = pads.ParquetFileFormat(read_options=pads.ParquetReadOptions(dictionary_columns=strings))
                ds = pads.dataset(self.paths, format=fmt)
            self._dataset = ds
        return self._dataset

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_dataset"] = None
        return state

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def type_of(self, name: str) -> pa.DataType:
        return self.schema.field(self.schema.get_field_index(name)).type

    def iter_column(self, name: str, *, chunk_rows: int | None = None) -> Iterator[pa.Array]:
        """One column in chunks of at most ``chunk_rows`` rows (default ``CHUNK_ROWS``; for Parquet only
        that column is read)."""
        chunk_rows = chunk_rows or CHUNK_ROWS
        stored = self._stored.get(name, name)
        if self._table is not None:
            for chunk in self._table.column(stored).chunks:
                for s in range(0, len(chunk), chunk_rows):
                    yield chunk.slice(s, chunk_rows)
            return
        if self._frame is not None:
            series = self._frame[stored]
            typ = self.type_of(name)
            for s in range(0, len(series), chunk_rows):
                part = series.iloc[s : s + chunk_rows]
                if part.dtype == object:
                    yield pa.array(part, type=typ, from_pandas=True)
                elif pd.api.types.is_extension_array_dtype(part.dtype):  # category, str, nullable
                    arr = pa.array(part, from_pandas=True)
                    yield arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
                else:
                    # numpy-backed: a zero-copy view; NaN stays NaN (counted as missing downstream)
                    yield pa.array(part.to_numpy(copy=False))
            return
        try:
            for batch in self._ds().to_batches(columns=[stored], filter=self.filter, batch_size=chunk_rows):
                if batch.num_rows:
                    yield batch.column(0)
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"Cannot read column {name!r} from {self.paths}: {e}.") from e

    def iter_frames(self, names: Sequence[str], *, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
        """Rows in pandas chunks of at most ``chunk_rows``, only ``names`` (exposed names), for row-wise scoring."""
        chunk_rows = chunk_rows or CHUNK_ROWS
        stored = [self._stored.get(n, n) for n in names]
        back = dict(zip(stored, names, strict=True))
        if self._frame is not None:
            for s in range(0, len(self._frame), chunk_rows):
                yield self._frame.iloc[s : s + chunk_rows][stored].rename(columns=back)
            return
        if self._table is not None:
            for batch in self._table.select(stored).to_batches(max_chunksize=chunk_rows):
                yield batch.to_pandas().rename(columns=back)
            return
        for batch in self._ds().to_batches(columns=stored, filter=self.filter, batch_size=chunk_rows):
            if batch.num_rows:
                yield batch.to_pandas().rename(columns=back)

    def column(self, name: str) -> pa.ChunkedArray:
        """One whole column as a ChunkedArray (O(rows) of that one column)."""
        chunks = list(self.iter_column(name))
        if not chunks:
            typ = self.type_of(name)
            return pa.chunked_array([], type=typ)
        if len({c.type for c in chunks}) == 1:
            return pa.chunked_array(chunks, type=chunks[0].type)
        return pa.chunked_array([c.cast(self.type_of(name)) for c in chunks])
