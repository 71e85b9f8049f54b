"""The in-process engine: streams record batches through a function in constant memory.

With ``workers > 1`` batches run in a pool of worker processes (one batch function per CPU-bound core) while
this process reads, orders and writes them; memory stays bounded by the batches in flight.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from bastion.engine._io import ParquetSink, open_source
from bastion.engine.interface import DEFAULT_BATCH_ROWS, BatchFn, MapStats, ResultFn
from bastion.errors import ConfigError, DataError

__all__ = ["MIN_PARALLEL_BATCHES", "LocalEngine", "available_cores"]

MIN_PARALLEL_BATCHES = 4

_FN: BatchFn | None = None  # the batch function, set once in each worker process


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker(fn: BatchFn) -> None:
    global _FN
    _FN = fn


def _apply(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, Any]:
    assert _FN is not None  # set by _init_worker before any task runs
    return _FN(batch)


class LocalEngine:
    """Run batch functions on this machine: in this process, or in ``workers`` processes.

    Parameters
    ----------
    workers
        Worker processes; 1 runs everything in this process. A table of fewer than ``MIN_PARALLEL_BATCHES``
        batches always runs here: starting the processes (about a second) would cost more than it saves.
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"The local engine's 'workers' must be a whole number of at least 1; got {workers!r}.")
        self.workers = workers

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
        total = src.rows or 0
        out = ParquetSink(sink, metadata)
        done = batches = 0
        reader = src.batches(batch_rows)
        head = list(itertools.islice(reader, MIN_PARALLEL_BATCHES))  # decides whether processes are worth it
        batch_iter: Iterator[pa.RecordBatch] = itertools.chain(head, reader)
        try:
            if self.workers == 1 or len(head) < MIN_PARALLEL_BATCHES:
                results: Iterator[tuple[pa.RecordBatch, Any]] = (fn(b) for b in batch_iter)
            else:
                results = self._parallel(fn, batch_iter)
            for result, partial in results:
                out.write(result)
                if on_result is not None:
                    on_result(partial)
                done += result.num_rows
                batches += 1
                if progress is not None:
                    progress(done, total)
            size = out.close()
        except BaseException:
            out.abort()
            raise
        finally:
            if hasattr(reader, "close"):
                reader.close()  # a failed run leaves a CSV reader mid-file
        return MapStats(rows=done, batches=batches, bytes_in=src.size, bytes_out=size, engine=self.name)

    def _parallel(
        self, fn: BatchFn, batch_iter: Iterator[pa.RecordBatch]
    ) -> Iterator[tuple[pa.RecordBatch, Any]]:
        """Results in input order; at most two batches per worker are read ahead."""
        # forkserver: workers never inherit this process's threads (a progress bar, a DB pool) mid-lock.
        # The server preloads the batch function's module, so each forked worker starts with it imported.
        ctx = multiprocessing.get_context("forkserver")
        module = getattr(fn, "__module__", None) or type(fn).__module__
        ctx.set_forkserver_preload(["bastion.engine._io", *([module] if module.startswith("bastion.") else [])])
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker, initargs=(fn,))
        pending: deque[Future[tuple[pa.RecordBatch, Any]]] = deque()
        try:
            for batch in batch_iter:
                pending.append(pool.submit(_apply, batch))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Nothing to release: worker processes live only for one ``map_batches`` call."""

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
