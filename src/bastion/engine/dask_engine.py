"""The Dask engine: batches of a Parquet or CSV file run on a ``dask.distributed`` cluster.

A LocalCluster by default, or an existing scheduler by address. Results come back in input order and are
written by the client with the same writer as the local engine, so deterministic output is byte-identical.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pyarrow as pa

from bastion.engine._io import ParquetSink, TableSource, open_source
from bastion.engine.interface import DEFAULT_BATCH_ROWS, BatchFn, MapStats, ResultFn
from bastion.errors import ConfigError, DataError

__all__ = ["DaskEngine"]


def _run_range(path: str, start: int, stop: int, fn: BatchFn) -> tuple[pa.RecordBatch, Any]:
    batch = open_source(Path(path)).read_range(start, stop)
    return fn(batch)


def _run_batch(batch: pa.RecordBatch, fn: BatchFn) -> tuple[pa.RecordBatch, Any]:
    return fn(batch)


class DaskEngine:
    """Run batch functions on Dask workers.

    Parameters
    ----------
    scheduler
        Address of an existing scheduler (``tcp://host:8786``); None starts a LocalCluster.
    n_workers, processes
        LocalCluster shape (ignored with ``scheduler``).
    window
        Batches in flight at once; bounds the client's memory.
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        n_workers: int = 2,
        processes: bool = False,
        window: int | None = None,
    ) -> None:
        try:
            distributed: Any = importlib.import_module("dask.distributed")
        except ImportError as e:  # the optional extra is not installed
            raise ConfigError("The Dask engine needs `pip install bastion-mlops[dask]`.") from e
        self._cluster: Any = None
        self._client: Any = None
        try:
            if scheduler:
                self._client = distributed.Client(scheduler, timeout="10s")
            else:
                self._cluster = distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=None
                )
                self._client = distributed.Client(self._cluster)
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"Cannot reach the Dask scheduler {scheduler or '(local)'}: {e}") from e
        self.window = window or max(2, 2 * len(self._client.scheduler_info().get("workers", {})) + 1)

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` this engine runs on, for stages that submit their own tasks."""
        return self._client

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
        fn_future = self._client.scatter(fn, broadcast=True, hash=False)
        # Each entry: (result future, scattered input or None); the input is held until its result is back.
        pending: deque[tuple[Any, Any]] = deque()
        done = batches = 0
        total = src.rows or 0  # CSV: unknown, reported as 0 like the local engine
        tasks = self._submit_all(source, src, fn_future, batch_rows)
        try:
            for task in tasks:
                pending.append(task)
                batches += 1
                if len(pending) >= self.window:
                    done = self._drain_one(pending, out, on_result, done, total, progress)
            while pending:
                done = self._drain_one(pending, out, on_result, done, total, progress)
            size = out.close()
        except BaseException:
            for result, data in pending:
                result.cancel()
                if data is not None:
                    data.cancel()
            out.abort()
            raise
        finally:
            tasks.close()  # a failed run leaves the CSV reader mid-file
        return MapStats(rows=done, batches=batches, bytes_in=src.size, bytes_out=size, engine=self.name)

    def _submit_all(
        self, source: Path, src: TableSource, fn_future: Any, batch_rows: int
    ) -> Generator[tuple[Any, Any], None, None]:
        """Submit one task per batch, lazily, so the caller's window bounds what is read and in flight.

        Parquet: workers read their row range by path. CSV cannot be split by byte ranges (a quoted field
        may hold a newline), so the client reads it with the local engine's reader and scatters each batch.
        """
        if src.format == "parquet" and src.rows is not None:
            path = str(Path(source).resolve())
            for start in range(0, src.rows, batch_rows):
                stop = min(start + batch_rows, src.rows)
                yield self._client.submit(_run_range, path, start, stop, fn_future, pure=False), None
            return
        for batch in src.batches(batch_rows):
            data = self._client.scatter(batch, hash=False)
            yield self._client.submit(_run_batch, data, fn_future, pure=False), data

    @staticmethod
    def _drain_one(
        pending: deque[tuple[Any, Any]],
        out: ParquetSink,
        on_result: ResultFn | None,
        done: int,
        total: int,
        progress: Callable[[int, int], None] | None,
    ) -> int:
        result, data = pending.popleft()
        batch, partial = result.result()
        if data is not None:
            data.release()
        out.write(batch)
        if on_result is not None:
            on_result(partial)
        done += batch.num_rows
        if progress is not None:
            progress(done, total)
        return done

    def close(self) -> None:
        """Close the client and any LocalCluster this engine started."""
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
