"""The engine seam: where batch work over a table runs (in process, or on a Dask cluster).

Stages hand an engine a picklable batch function; they never import Dask themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

__all__ = ["DEFAULT_BATCH_ROWS", "BatchFn", "Engine", "MapStats", "ResultFn"]

DEFAULT_BATCH_ROWS = 65_536

#: a batch function returns the transformed batch and a small partial result (e.g. group counts)
BatchFn = Callable[[pa.RecordBatch], tuple[pa.RecordBatch, Any]]
ResultFn = Callable[[Any], None]


@dataclass(frozen=True)
class MapStats:
    """What one ``map_batches`` run did."""

    rows: int
    batches: int
    bytes_in: int
    bytes_out: int
    engine: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "batches": self.batches,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "engine": self.engine,
        }


class Engine(Protocol):
    """Runs a batch function over a table file and writes the results to Parquet in input order.

    Both engines cut the input into the same batches of ``batch_rows`` rows and write one row group per
    batch with the same writer options, so a deterministic ``fn`` gives byte-identical output.
    """

    name: str

    def map_batches(
        self,
        source: Path,
        fn: BatchFn,
        sink: Path,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        metadata: dict[str, str] | None = None,
        on_result: ResultFn | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> MapStats: ...

    def close(self) -> None: ...
