"""Column-at-a-time access to tabular inputs (pandas, pyarrow, Parquet paths or globs), so drift
statistics hold one column of each side in memory, never the whole table.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from bastion.errors import DataError

__all__ = ["TableSource", "expand_paths"]


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
            raise DataError(f"Input {s!r} does not exist. Give a Parquet file, a folder or a glob.")
    seen: set[str] = set()
    files = [f for f in out if not (f in seen or seen.add(f))]  # type: ignore[func-returns-value]
    if not files:
        raise DataError(f"No Parquet files match {spec!r}. Check the path or glob.")
    return files


class TableSource:
    """A table whose columns are read one at a time.

    Wraps a pandas DataFrame, a pyarrow Table, or Parquet files (read lazily, column by column).
    Picklable, so Dask workers can read their own columns from shared storage.
    """

    def __init__(
        self,
        *,
        table: pa.Table | None = None,
        paths: list[str] | None = None,
        rename: dict[str, str] | None = None,
    ) -> None:
        self._table = table
        self.paths = paths
        self._dataset: pads.Dataset | None = None
        self._stored: dict[str, str] = {}
        if table is not None:
            self.schema = table.schema
            self.num_rows = table.num_rows
        else:
            try:
                ds = self._ds()
                self.schema = ds.schema
                self.num_rows = int(ds.count_rows())
            except (pa.ArrowInvalid, OSError) as e:
                raise DataError(f"Cannot read Parquet input {paths}: {e}. Check the files.") from e
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
            try:
                return cls(table=pa.Table.from_pandas(obj, preserve_index=False))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise DataError(f"Cannot convert the DataFrame to Arrow: {e}. Give columns one type each.") from e
        if isinstance(obj, pa.Table):
            return cls(table=obj)
        if isinstance(obj, str | Path) or (isinstance(obj, list | tuple) and obj and isinstance(obj[0], str | Path)):
            return cls(paths=expand_paths(obj))
        raise DataError(
            f"Expected a pandas DataFrame, a pyarrow Table or Parquet path(s); got {type(obj).__name__}."
        )

    def renamed(self, rename: dict[str, str]) -> TableSource:
        """The same data with columns exposed under new names (``{stored: new}``)."""
        return TableSource(table=self._table, paths=self.paths, rename=rename)

    def select(self, names: list[str]) -> TableSource:
        """A view holding only ``names`` (in-memory tables are sliced; files stay lazy)."""
        if self._table is not None:
            keep = [self._stored.get(n, n) for n in names]
            t = self._table.select(keep).rename_columns(names)
            return TableSource(table=t)
        view = TableSource.__new__(TableSource)
        view.__dict__.update(self.__dict__)
        view._dataset = None
        view.schema = pa.schema([self.schema.field(n) for n in names])
        return view

    def _ds(self) -> pads.Dataset:
        if self._dataset is None:
            ds = pads.dataset(self.paths, format="parquet")
            strings = [f.name for f in ds.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            if strings:
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

    def column(self, name: str) -> pa.ChunkedArray:
        """One column as a ChunkedArray (for Parquet: only that column is read)."""
        stored = self._stored.get(name, name)
        if self._table is not None:
            return self._table.column(stored)
        try:
            return self._ds().to_table(columns=[stored]).column(stored)
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"Cannot read column {name!r} from {self.paths}: {e}.") from e
