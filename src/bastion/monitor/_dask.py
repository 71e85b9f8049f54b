"""Drift columns on a Dask cluster: one task per column, each worker reading its own column from
shared Parquet (or a scattered in-memory table), running the same code as in-process, so results are equal.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bastion.errors import ConfigError
from bastion.monitor._source import TableSource
from bastion.monitor.config import DriftConfig
from bastion.monitor.drift.interface import FeatureDrift

__all__ = ["dask_client", "run_columns_dask"]


@contextmanager
def dask_client(engine: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``engine``: "dask" (a new LocalCluster), a scheduler address,
    a Client, or an engine object holding one (``client``/``_client``). Closes only what it opened."""
    try:
        distributed: Any = importlib.import_module("dask.distributed")
    except ImportError as e:
        raise ConfigError("The Dask engine needs `pip install bastion-mlops[dask]`.") from e
    if isinstance(engine, distributed.Client):
        yield engine
        return
    held = getattr(engine, "client", None)
    if held is not None:
        yield held
        return
    if engine == "dask":
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    if isinstance(engine, str) and "://" in engine:
        try:
            client = distributed.Client(engine, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"Cannot reach the Dask scheduler {engine}: {e}. Check the address.") from e
        try:
            yield client
        finally:
            client.close()
        return
    raise ConfigError(f"engine must be 'local', 'dask', a scheduler address or a Dask client; got {engine!r}.")


def _column_task(name: str, ref: TableSource, cur: TableSource, cfg: DriftConfig) -> FeatureDrift:
    from bastion.monitor.drift.run import column_drift

    return column_drift(name, ref, cur, cfg)


def run_columns_dask(
    names: list[str],
    ref: TableSource,
    cur: TableSource,
    cfg: DriftConfig,
    engine: Any,
    progress: Callable[[int, int], None] | None = None,
) -> list[FeatureDrift]:
    """Per-column statistics computed on Dask workers, in ``names`` order."""
    with dask_client(engine) as client:
        distributed: Any = importlib.import_module("dask.distributed")
        # Parquet sources travel as paths; in-memory tables are scattered once, not per task.
        ref_h = ref if ref.paths else client.scatter(ref, broadcast=False)
        cur_h = cur if cur.paths else client.scatter(cur, broadcast=False)
        futures = [client.submit(_column_task, n, ref_h, cur_h, cfg, pure=False) for n in names]
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[FeatureDrift | None] = [None] * len(names)
        done = 0
        for fut in distributed.as_completed(futures):
            out[index[fut.key]] = fut.result()
            done += 1
            if progress:
                progress(done, len(names))
        return [r for r in out if r is not None]
