"""The in-process engine: streams record batches through a function in constant memory.

Memory is bounded by one input batch plus one output batch, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bastion.engine._io import ParquetSink, open_source
from bastion.engine.interface import DEFAULT_BATCH_ROWS, BatchFn, MapStats, ResultFn
from bastion.errors import DataError

__all__ = ["LocalEngine"]


class LocalEngine:
    """Run batch functions in this process."""

    name = "local"

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
    ) -> MapStats:
        src = open_source(source)
        if src.rows == 0:
            raise DataError(f"Input file {source} has no rows; nothing to do.")
        out = ParquetSink(sink, metadata)
        done = batches = 0
        try:
            for batch in src.batches(batch_rows):
                result, partial = fn(batch)
                out.write(result)
                if on_result is not None:
                    on_result(partial)
                done += batch.num_rows
                batches += 1
                if progress is not None:
                    progress(done, src.rows or 0)
            size = out.close()
        except BaseException:
            out.abort()
            raise
        return MapStats(rows=done, batches=batches, bytes_in=src.size, bytes_out=size, engine=self.name)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
