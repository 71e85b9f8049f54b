"""Where heavy data work runs: in process (streaming pyarrow batches) or on Dask.

Stages call :func:`get_engine` and pass it picklable batch functions; only this package imports Dask.
"""

from __future__ import annotations

from bastion.engine._io import open_source
from bastion.engine.interface import DEFAULT_BATCH_ROWS, BatchFn, Engine, MapStats
from bastion.engine.local import LocalEngine, available_cores
from bastion.errors import ConfigError

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "BatchFn",
    "Engine",
    "LocalEngine",
    "MapStats",
    "available_cores",
    "get_engine",
    "open_source",
]


def get_engine(
    name: str = "local", *, scheduler: str | None = None, workers: int | None = None, **options: object
) -> Engine:
    """An engine by name: ``"local"`` or ``"dask"`` (LocalCluster, or ``scheduler`` address).

    ``workers`` sizes the local engine's process pool; None uses every core this process may run on.
    """
    if name == "local":
        if scheduler:
            raise ConfigError("--scheduler only applies to --engine dask.")
        return LocalEngine(available_cores() if workers is None else workers)
    if name == "dask":
        from bastion.engine.dask_engine import DaskEngine

        return DaskEngine(scheduler or None, **options)  # type: ignore[arg-type]
    raise ConfigError(f"Engine must be 'local' or 'dask'; got {name!r}.")
