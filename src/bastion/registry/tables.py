"""Reading tabular data (Parquet, CSV, JSONL, a folder of them) and summarising it for the registry.

The schema and per-column statistics recorded at registration become the data contract that
validation and request checking use later.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bastion.errors import DataError

__all__ = ["MAX_CATEGORIES", "detect_format", "iter_batches", "read_table", "summarize"]

MAX_CATEGORIES = 50
_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def detect_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl`` from the file name (``.gz`` allowed for text formats)."""
    name = path.name.lower()
    for comp in (".gz", ".bz2", ".zst"):
        if name.endswith(comp):
            name = name[: -len(comp)]
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(4) == b"PAR1":
                return "parquet"
    raise DataError(f"{path}: unknown data format; expected .parquet, .csv, .tsv or .jsonl (optionally .gz).")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        out = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        out = [p for p in out if _is_data(p)]
        if not out:
            raise DataError(f"{path} holds no .parquet, .csv or .jsonl files.")
        return out
    if not path.exists():
        raise DataError(f"{path} does not exist.")
    return [path]


def _is_data(p: Path) -> bool:
    try:
        detect_format(p)
        return True
    except DataError:
        return False


def iter_batches(
    path: str | Path, *, batch_rows: int = 65536, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream record batches from a file or folder in constant memory."""
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    for f in _files(Path(path)):
        fmt = detect_format(f)
        try:
            if f.stat().st_size == 0:
                raise DataError(f"{f} is empty.")
            if fmt == "parquet":
                pf = pq.ParquetFile(f)
                yield from pf.iter_batches(batch_size=batch_rows, columns=columns)
            elif fmt == "csv":
                delim = "\t" if ".tsv" in f.name.lower() else ","
                reader = pacsv.open_csv(
                    f,
                    parse_options=pacsv.ParseOptions(delimiter=delim),
                    read_options=pacsv.ReadOptions(block_size=16 << 20),
                )
                for batch in reader:
                    yield batch.select(columns) if columns else batch
            else:
                table = pajson.read_json(f)
                for batch in table.to_batches(max_chunksize=batch_rows):
                    yield batch.select(columns) if columns else batch
        except DataError:
            raise
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, EOFError, KeyError) as e:
            raise DataError(f"Cannot read {f} as {fmt}: {e}".rstrip(".") + ".") from e


def read_table(path: str | Path, *, columns: list[str] | None = None) -> pa.Table:
    """Read a whole file or folder into an Arrow table."""
    batches = list(iter_batches(path, columns=columns))
    if not batches:
        raise DataError(f"{path} holds no rows and no schema.")
    try:
        return pa.Table.from_batches(batches)
    except pa.ArrowInvalid as e:
        raise DataError(f"The files under {path} do not share one schema: {e}") from e


class _ColumnStats:
    def __init__(self, name: str, typ: pa.DataType) -> None:
        self.name = name
        self.type = typ
        self.count = 0
        self.nulls = 0
        self.numeric = pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)
        self.temporal = pa.types.is_temporal(typ)
        self.stringy = pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_dictionary(typ)
        self.boolean = pa.types.is_boolean(typ)
        self.min: Any = None
        self.max: Any = None
        self.sum = 0.0
        self.sumsq = 0.0
        self.n_finite = 0
        self.cats: Counter[str] | None = Counter() if (self.stringy or self.boolean) else None
        self.len_max = 0

    def update(self, arr: pa.Array) -> None:
        self.count += len(arr)
        self.nulls += arr.null_count
        if len(arr) == arr.null_count:
            return
        if self.numeric or self.temporal:
            mm = pc.min_max(arr)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if lo is not None:
                self.min = lo if self.min is None else min(self.min, lo)
                self.max = hi if self.max is None else max(self.max, hi)
        if self.numeric:
            f = pc.cast(arr, pa.float64())
            f = pc.filter(f, pc.is_finite(f))
            self.n_finite += len(f)
            if len(f):
                self.sum += pc.sum(f).as_py()
                self.sumsq += pc.sum(pc.multiply(f, f)).as_py()
        if self.stringy:
            lens = pc.utf8_length(pc.cast(arr, pa.string()))
            m = pc.max(lens).as_py()
            self.len_max = max(self.len_max, m or 0)
        if self.cats is not None:
            vc = pc.value_counts(pc.cast(arr, pa.string()))
            for item in vc:
                v = item["values"].as_py()
                if v is not None:
                    self.cats[v] += item["counts"].as_py()
            if len(self.cats) > 4 * MAX_CATEGORIES:
                self.cats = None  # high cardinality: not a category, and we keep no values of it

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "nulls": self.nulls}
        if self.numeric or self.temporal:
            out["min"] = _jsonable(self.min)
            out["max"] = _jsonable(self.max)
        if self.numeric and self.n_finite:
            mean = self.sum / self.n_finite
            var = max(self.sumsq / self.n_finite - mean * mean, 0.0)
            out["mean"] = mean
            out["std"] = math.sqrt(var)
        if self.stringy:
            out["max_length"] = self.len_max
        if self.cats is not None:
            out["distinct"] = len(self.cats)
            non_null = self.count - self.nulls
            # only low-cardinality columns become categories: a column of unique values would leak them
            if len(self.cats) <= MAX_CATEGORIES and non_null and len(self.cats) <= max(1, non_null // 2):
                out["categories"] = dict(sorted(self.cats.items()))
        else:
            out["distinct"] = None
        return out


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, int | float | str | bool):
        return v
    return str(v)


def summarize(batches: Iterator[pa.RecordBatch]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], int]:
    """Schema, per-column statistics and row count from a stream of batches."""
    schema: pa.Schema | None = None
    cols: list[_ColumnStats] = []
    rows = 0
    for batch in batches:
        if schema is None:
            schema = batch.schema
            cols = [_ColumnStats(f.name, f.type) for f in schema]
        elif not batch.schema.equals(schema):
            raise DataError(f"Record batches disagree on the schema: {batch.schema} vs {schema}.")
        rows += batch.num_rows
        for c, arr in zip(cols, batch.columns, strict=True):
            c.update(arr)
    if schema is None:
        raise DataError("The data holds no rows and no schema.")
    names = [f.name for f in schema]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"Duplicate column names: {', '.join(dupes)}.")
    out_schema = [{"name": f.name, "type": str(f.type), "nullable": bool(f.nullable)} for f in schema]
    return out_schema, {c.name: c.result() for c in cols}, rows
