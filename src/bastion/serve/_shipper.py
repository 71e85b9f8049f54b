"""The prediction-log shipper: a child process that turns the server's compact request records into
columnar prediction-log batches, so building Arrow tables and rolling Parquet never hold the server's GIL.

The server sends pickled batches over a pipe; EOF (the server stopped or died) flushes and exits.
Records go to Arrow column by column (one ``zip`` or one matrix slice per batch), never row dicts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["Compact", "main", "to_tables"]

log = logging.getLogger("bastion.serve")

# One compact record per request: (request_id, ts (epoch seconds), version, key_id, outcome, latency_ms,
# log columns, inputs or None, predictions or None, probabilities or None). ``log columns`` is the served
# version's ``InputSchema.log_columns``: (column name, index into the input row, kind) of every feature
# that may be logged; protected features are not in it, so their values are never read here. Inputs are
# the validated float matrix (numeric schemas) as ``(float64 bytes, columns)`` or an array, or the row tuples.
Compact = tuple[str, float, int, Any, str, float, tuple[tuple[str, int, str], ...], Any, Any, Any]
_OUTCOMES = frozenset(("ok", "invalid", "unauthorized", "rate_limited", "error"))
_NICE = 10
_MAX_BATCH = 4096  # request records per write-ahead-log frame
_KIND_TYPES = {"number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_(), "string": pa.string()}


def _base(rids: list[str], ts: list[float], versions: list[int], keys: list[Any], outcomes: list[str],
          lat: list[float]) -> dict[str, pa.Array]:
    micros = np.round(np.asarray(ts, dtype=np.float64) * 1e6).astype(np.int64)
    return {
        "request_id": pa.array(rids, type=pa.string()),
        "ts": pa.array(micros, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "version": pa.array(versions, type=pa.int64()),
        "key_id": pa.array(keys, type=pa.string()),
        "outcome": pa.array(outcomes, type=pa.string()),
        "latency_ms": pa.array(lat, type=pa.float64()),
    }


def _inputs(spec: Sequence[tuple[str, int, str]], inputs: list[Any]) -> dict[str, pa.Array]:
    from bastion.monitor.prediction_log import column_array

    if not spec:
        return {}
    inputs = [np.frombuffer(x[0], dtype=np.float64).reshape(-1, x[1]) if isinstance(x, tuple) else x
              for x in inputs]
    if all(isinstance(x, np.ndarray) for x in inputs):
        # one transposed copy: each feature's values become a contiguous row, handed to Arrow as is
        cols_t = np.ascontiguousarray((np.concatenate(inputs) if len(inputs) > 1 else inputs[0]).T)
        out = {}
        for name, j, kind in spec:
            col = pa.array(cols_t[j])
            if kind == "integer":
                try:
                    col = col.cast(pa.int64())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass  # a value past int64 (no range on the field): logged as the float the model saw
            out[name] = col
        return out
    rows: list[Any] = []
    for x in inputs:
        rows.extend(x.tolist() if isinstance(x, np.ndarray) else x)
    cols = list(zip(*rows, strict=True))
    return {name: column_array(cols[j], _KIND_TYPES.get(kind)) for name, j, kind in spec}


def _n_rows(x: Any) -> int:
    return len(x[0]) // (8 * x[1]) if isinstance(x, tuple) else len(x)


def to_tables(batch: Iterable[Compact]) -> list[pa.Table]:
    """Prediction-log tables for a batch of records: one row per predicted input row, one per refused
    request; one table per distinct input layout (a hot reload may change it mid-batch)."""
    from bastion.monitor.prediction_log import column_array

    ok: dict[tuple[tuple[str, int, str], ...], list[Compact]] = {}
    refused: list[Compact] = []
    for rec in batch:
        if rec[4] == "ok" and rec[7] is not None and _n_rows(rec[7]):
            ok.setdefault(rec[6], []).append(rec)
        else:
            refused.append(rec)
    tables: list[pa.Table] = []
    for spec, recs in ok.items():
        rids: list[str] = []
        ts: list[float] = []
        versions: list[int] = []
        keys: list[Any] = []
        lat: list[float] = []
        labels: list[Any] = []
        probas: list[Any] = []
        inputs: list[Any] = []
        any_proba = False
        for rid, t, version, key, _, ms, _, x, preds, probs in recs:
            n = _n_rows(x)
            rids += [rid] * n
            ts += [t] * n
            versions += [version] * n
            keys += [key] * n
            lat += [ms] * n
            inputs.append(x)
            labels += list(preds) if preds is not None and len(preds) == n else [None] * n
            if probs is not None and len(probs) == n:
                probas += probs
                any_proba = True
            else:
                probas += [None] * n
        cols = _base(rids, ts, versions, keys, ["ok"] * len(rids), lat)
        cols.update(_inputs(spec, inputs))
        cols["out.label"] = column_array(labels)
        if any_proba:
            cols["out.proba"] = pa.array(probas, type=pa.float64())
        tables.append(pa.table(cols))
    if refused:
        tables.append(pa.table(_base(
            [r[0] for r in refused], [r[1] for r in refused], [r[2] for r in refused], [r[3] for r in refused],
            [r[4] if r[4] in _OUTCOMES else "error" for r in refused], [r[5] for r in refused])))
    return tables


def main(conn: Any, home: str, model: str) -> None:
    """Child process entry point: receive batches until EOF, write them with ``PredictionLogWriter``."""
    from bastion.monitor.prediction_log import PredictionLogWriter

    # The server decides when we stop (it closes the pipe, or dies and the pipe closes): a SIGINT or
    # SIGTERM sent to the whole process group must not cut off the batches the server still sends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Background work: when it competes for a core with the server's workers, they go first (lower weight),
    # and waking up with a batch does not preempt a worker mid-request (SCHED_BATCH, where Linux has it).
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    writer = PredictionLogWriter(home, model, max_rows=250_000, max_bytes=64 * 1024 * 1024)
    try:
        done = False
        while not done:
            batch: list[Compact] = []
            try:
                batch.extend(pickle.loads(conn.recv_bytes()))
                # the server sends small chunks; take what is already waiting and write it as one batch
                while len(batch) < _MAX_BATCH and conn.poll(0):
                    batch.extend(pickle.loads(conn.recv_bytes()))
            except (EOFError, OSError):
                done = True
            try:
                for table in to_tables(batch):
                    writer.append_table(table)
            except Exception:
                # One batch the log cannot hold must not end logging for the rest of the server's life
                # (a request crafted to do that would blind monitoring); it is dropped and said so.
                log.exception("prediction log: dropped a batch of %s request records it could not write",
                              len(batch))
            writer.maybe_roll()
    finally:
        writer.close()
