"""The prediction-log shipper: a child process that turns the server's compact request records into
prediction-log rows, so JSON encoding and Parquet rolls never hold the server's GIL.

The server sends pickled batches over a pipe; EOF (the server stopped or died) flushes and exits.
"""

from __future__ import annotations

import logging
import pickle
import signal
from collections.abc import Iterable
from typing import Any

__all__ = ["expand", "main"]

log = logging.getLogger("bastion.serve")

# One compact record per request: (request_id, version, key_id, outcome, latency_ms, features, sensitive,
# rows or None, predictions or None, probabilities or None).
Compact = tuple[str, int, Any, str, float, tuple[str, ...], frozenset[str], Any, Any, Any]
_OUTCOMES = ("ok", "invalid", "unauthorized", "rate_limited")


def expand(batch: Iterable[Compact]) -> list[dict[str, Any]]:
    """Prediction-log records (one per input row; one per refused request), protected fields dropped."""
    out: list[dict[str, Any]] = []
    for rid, version, key_id, outcome, latency, feats, sens, rows, preds, probs in batch:
        base = {"request_id": rid, "version": version, "key_id": key_id, "latency_ms": latency,
                "outcome": outcome if outcome in _OUTCOMES else "error"}
        if outcome != "ok" or not rows:
            out.append(base)
            continue
        keep = [i for i, f in enumerate(feats) if f not in sens]
        for i, row in enumerate(rows):
            outputs: dict[str, Any] = {"label": preds[i] if preds is not None and i < len(preds) else None}
            if probs is not None and i < len(probs):
                outputs["proba"] = probs[i]
            out.append({**base, "inputs": {feats[j]: row[j] for j in keep}, "outputs": outputs})
    return out


def main(conn: Any, home: str, model: str) -> None:
    """Child process entry point: receive batches until EOF, write them with ``PredictionLogWriter``."""
    from bastion.monitor.prediction_log import PredictionLogWriter

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when we stop (it closes the pipe)
    writer = PredictionLogWriter(home, model)
    try:
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                break
            if not data:
                break
            writer.extend(expand(pickle.loads(data)))
            writer.maybe_roll()
    finally:
        writer.close()
