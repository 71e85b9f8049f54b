"""Reading tables for the scanner: a DataFrame, or CSV / Parquet / JSONL files or a folder of them,
streamed in record batches (pyarrow) so memory stays flat; every read error becomes a `DataError`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from bastion.errors import DataError

__all__ = ["BATCH_ROWS", "TableSource", "open_source"]

BATCH_ROWS = 32_768
_SUFFIXES = {
    ".csv": "csv", ".tsv": "csv", ".gz": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}  # fmt: skip


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".csv.gz", ".tsv.gz")):
        return "csv"
    if name.endswith((".jsonl.gz", ".ndjson.gz")):
        return "jsonl"
    if path.suffix.lower() == ".gz":
        return None
    return _SUFFIXES.get(path.suffix.lower())


class TableSource:
    """Columns, a leading sample, and batches of chosen columns over the whole table."""

    def __init__(self, *, label: str, frame: pd.DataFrame | None = None, files: Sequence[Path] = ()) -> None:
        self.label = label
        self._frame = frame
        self._files = list(files)
        self.columns: list[str] = list(map(str, frame.columns)) if frame is not None else self._file_columns()

    # -- public -----------------------------------------------------------------------------------
    def sample(self, rows: int) -> pd.DataFrame:
        """The first ``rows`` rows (a DataFrame is sampled evenly instead)."""
        if self._frame is not None:
            df = self._frame
            if len(df) > rows:
                step = len(df) / rows
                df = df.iloc[[int(i * step) for i in range(rows)]]
            return df.rename(columns=str)
        parts: list[pd.DataFrame] = []
        got = 0
        # small batches: the sample should not decode a whole 32k-row batch of every column
        for batch in self.batches(None, rows=min(rows, BATCH_ROWS)):
            parts.append(batch.iloc[: rows - got])
            got += len(parts[-1])
            if got >= rows:
                break
        if not parts:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in self.columns})
        return pd.concat(parts, ignore_index=True)

    def batches(self, columns: Sequence[str] | None, rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
        """Batches of at most ``rows`` rows of ``columns`` (all when None), in order."""
        if self._frame is not None:
            df = self._frame.rename(columns=str)
            sub = df if columns is None else df[list(columns)]
            for i in range(0, len(sub), rows):
                yield sub.iloc[i : i + rows]
            return
        for path in self._files:
            yield from self._file_batches(path, columns, rows)

    # -- files ------------------------------------------------------------------------------------
    def _file_columns(self) -> list[str]:
        cols: list[str] = []
        for path in self._files:
            for c in self._columns_of(path):
                if c not in cols:
                    cols.append(c)
        return cols

    def _columns_of(self, path: Path) -> list[str]:
        kind = _kind(path)
        try:
            if kind == "parquet":
                import pyarrow.parquet as pq

                return list(pq.ParquetFile(path).schema_arrow.names)
            if kind == "csv":
                import pyarrow.csv as pacsv

                reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20),
                                        parse_options=self._csv_parse(path))
                return list(reader.schema.names)
            first = self._jsonl_first(path)
            return list(first.keys())
        except DataError:
            raise
        except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError) as e:
            raise DataError(f"Cannot read {path} as {kind}: {e}. Check that the file is complete and valid.") from e

    @staticmethod
    def _csv_parse(path: Path) -> Any:
        import pyarrow.csv as pacsv

        return pacsv.ParseOptions(delimiter="\t" if ".tsv" in path.name.lower() else ",", newlines_in_values=True)

    def _jsonl_first(self, path: Path) -> dict[str, Any]:
        import gzip

        opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path} is not JSON Lines: the first record does not parse ({e}).") from e
                    if not isinstance(obj, dict):
                        raise DataError(f"{path}: each JSON Lines record must be an object; got {type(obj).__name__}.")
                    return obj
        raise DataError(f"{path} holds no records. Give a file with a header/records, or drop it.")

    def _file_batches(self, path: Path, columns: Sequence[str] | None, rows: int) -> Iterator[pd.DataFrame]:
        kind = _kind(path)
        own = self._columns_of(path)
        want = own if columns is None else [c for c in columns if c in own]
        missing = [] if columns is None else [c for c in columns if c not in own]
        try:
            if kind == "parquet":
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(path)
                for rb in pf.iter_batches(batch_size=rows, columns=want):
                    yield self._fill(rb.to_pandas(), missing)
            elif kind == "csv":
                import pyarrow.csv as pacsv

                # every column as text: leading zeros (ZIP codes, IDs) must survive
                reader = pacsv.open_csv(
                    path,
                    read_options=pacsv.ReadOptions(block_size=8 << 20),
                    parse_options=self._csv_parse(path),
                    convert_options=pacsv.ConvertOptions(
                        column_types={c: pa.string() for c in own}, include_columns=want,
                        strings_can_be_null=True,
                    ),
                )
                for rb in reader:
                    df = rb.to_pandas()
                    for i in range(0, len(df), rows):
                        yield self._fill(df.iloc[i : i + rows], missing)
            else:
                for df in pd.read_json(path, lines=True, chunksize=rows, dtype=False):
                    df = df.rename(columns=str)
                    yield self._fill(df[[c for c in want if c in df.columns]], missing)
        except DataError:
            raise
        except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError) as e:
            raise DataError(
                f"Cannot read {path} as {kind}: {e}. The file may be truncated or corrupt; re-export it."
            ) from e

    @staticmethod
    def _fill(df: pd.DataFrame, missing: Sequence[str]) -> pd.DataFrame:
        if missing:
            df = df.copy()
            for c in missing:
                df[c] = None
        return df


def open_source(data: Any) -> TableSource:
    """A `TableSource` for a DataFrame, a file path, or a folder of CSV/Parquet/JSONL files."""
    if isinstance(data, pd.DataFrame):
        return TableSource(label="<DataFrame>", frame=data)
    if not isinstance(data, str | Path):
        raise DataError(
            f"scan_table expects a pandas DataFrame or a path to CSV/Parquet/JSONL; got {type(data).__name__}."
        )
    path = Path(data)
    if not path.exists():
        raise DataError(f"{path} does not exist. Give a CSV, Parquet or JSONL file, or a folder of them.")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
        if not files:
            raise DataError(f"The folder {path} holds no CSV, Parquet or JSONL files.")
    else:
        if _kind(path) is None:
            raise DataError(
                f"{path} has an unknown extension; expected .csv, .tsv, .parquet, .pq, .jsonl, .ndjson "
                "(optionally .gz for text formats)."
            )
        files = [path]
    for f in files:
        if f.stat().st_size == 0:
            raise DataError(f"{f} is empty (0 bytes). Give a file with a header and rows.")
    return TableSource(label=str(path), files=files)
