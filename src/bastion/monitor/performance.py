"""Model performance over time from delayed labels joined to the prediction log by request id,
per window and per sensitive group; without labels, an estimate from calibrated confidence.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn import metrics as skm

from bastion.errors import DataError
from bastion.monitor.drift.interface import _jsonable_dict
from bastion.monitor.prediction_log import _check_name

__all__ = [
    "LABEL_COLUMN",
    "WindowPerformance",
    "add_labels",
    "estimate_binary",
    "join_labels",
    "labels_dir",
    "performance_by_window",
    "read_labels",
]

LABEL_COLUMN = "label"


@dataclass(frozen=True)
class WindowPerformance:
    """Metrics of one time window (``estimated=True`` when computed without ground truth)."""

    start: str | None
    end: str | None
    task: str  # "binary", "multiclass" or "regression"
    n_predictions: int
    n_labelled: int
    metrics: dict[str, float]
    estimated: bool = False
    groups: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _jsonable_dict(
            {
                "start": self.start,
                "end": self.end,
                "task": self.task,
                "n_predictions": self.n_predictions,
                "n_labelled": self.n_labelled,
                "metrics": self.metrics,
                "estimated": self.estimated,
                "groups": self.groups,
                "note": self.note,
            }
        )


def labels_dir(home: str | Path | Any, model: str) -> Path:
    base = Path(home.settings.home_path) if hasattr(home, "settings") else Path(home)
    return base / "labels" / _check_name(model)


def add_labels(
    home: str | Path | Any,
    model: str,
    source: str | Path | pd.DataFrame,
    *,
    id_column: str = "request_id",
    label_column: str | None = None,
) -> tuple[Path, int]:
    """Store delayed ground truth for ``model``; returns the file written and its row count.

    ``label_column`` defaults to the only column besides ``id_column`` (or one named ``label``).
    """
    if isinstance(source, pd.DataFrame):
        df = source
    else:
        p = Path(source)
        if not p.exists():
            raise DataError(f"Label file {p} does not exist.")
        if p.suffix == ".csv":
            df = pd.read_csv(p)
        else:
            try:
                df = pd.read_parquet(p)
            except (pa.ArrowInvalid, OSError) as e:
                raise DataError(f"Cannot read {p} as Parquet: {e}. Give a .parquet or .csv file.") from e
    if id_column not in df.columns:
        raise DataError(f"Label file has no id column {id_column!r}; it has {list(df.columns)}.")
    if label_column is None:
        others = [c for c in df.columns if c != id_column]
        if LABEL_COLUMN in others:
            label_column = LABEL_COLUMN
        elif len(others) == 1:
            label_column = others[0]
        else:
            raise DataError(f"Say which column holds the label (--label-column); candidates: {others}.")
    if label_column not in df.columns:
        raise DataError(f"Label file has no column {label_column!r}; it has {list(df.columns)}.")
    out = pd.DataFrame(
        {
            "request_id": df[id_column].astype(str).to_numpy(),
            LABEL_COLUMN: df[label_column].map(_label_key).to_numpy(),
            "added_at": pd.Timestamp(datetime.now(UTC)),
        }
    )
    d = labels_dir(home, model)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = d / f"labels-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.parquet"
    tmp = path.with_name("." + path.name + ".tmp")
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), tmp)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    from bastion.monitor.prediction_log import ship_files

    ship_files(home, "labels", model, [path], day=False)  # a team: into the shared object store
    audited = getattr(home, "audited", None)
    if callable(audited):  # a project: the library audits label arrival, whichever door called it
        audited("monitor.labels_add", model, {"rows": len(out), "file": path.name})
    return path, len(out)


def read_labels(home: str | Path | Any, model: str) -> pd.DataFrame:
    """All stored labels of ``model`` (the latest label wins per request id): this folder's, and for a team
    with an object store every folder's (``<artifacts_url>/labels/<model>/``)."""
    from bastion.monitor.prediction_log import fetch_files

    d = labels_dir(home, model)
    files = sorted(d.glob("labels-*.parquet")) if d.is_dir() else []
    shared = fetch_files(home, "labels", model, r"labels-\d{8}T\d{12}Z\.parquet", day=False)
    files = sorted([*files, *(shared or [])], key=lambda f: f.name)
    if not files:
        return pd.DataFrame({"request_id": pd.Series(dtype=str), LABEL_COLUMN: pd.Series(dtype=str)})
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return df.drop_duplicates("request_id", keep="last")[["request_id", LABEL_COLUMN]]


def _label_key(v: Any) -> Any:
    """One comparable form for labels from different files (1, 1.0, '1' and True -> '1')."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool | np.bool_):
        return str(int(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return str(v)


def join_labels(log_df: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The log with a ``label`` column (missing where no label arrived yet)."""
    if "request_id" not in log_df.columns:
        raise DataError("The prediction log has no 'request_id' column; cannot join labels.")
    lab = labels[["request_id", LABEL_COLUMN]].drop_duplicates("request_id", keep="last")
    left = log_df.drop(columns=[LABEL_COLUMN], errors="ignore")
    return left.merge(lab, on="request_id", how="left")


def _task(df: pd.DataFrame) -> str:
    if "out.proba" in df.columns:
        return "binary"
    lab = df["out.label"].dropna() if "out.label" in df.columns else pd.Series(dtype=float)
    if lab.empty:
        return "binary"
    if pd.api.types.is_float_dtype(lab) and not np.all(np.mod(lab.to_numpy(dtype=float), 1) == 0):
        return "regression"
    return "binary" if lab.map(_label_key).nunique() <= 2 else "multiclass"


def _classification_metrics(
    y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, pos: str | None
) -> dict[str, float]:
    out = {"accuracy": float(skm.accuracy_score(y, pred))}
    if pos is not None:
        kw: dict[str, Any] = {"pos_label": pos, "average": "binary", "zero_division": 0}
    else:
        kw = {"average": "macro", "zero_division": 0}
    out["precision"] = float(skm.precision_score(y, pred, **kw))
    out["recall"] = float(skm.recall_score(y, pred, **kw))
    out["f1"] = float(skm.f1_score(y, pred, **kw))
    if proba is not None and pos is not None and len(set(y.tolist())) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(y == pos, proba))
    return out


def _regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    out = {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
    }
    if y.size >= 2:
        out["r2"] = float(skm.r2_score(y, pred))
    return out


def estimate_binary(pred_is_pos: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Expected accuracy, precision, recall and F1 from calibrated positive-class probabilities.

    Assumes calibration: a request predicted with probability p is positive with probability p.
    """
    p = np.clip(proba.astype(np.float64), 0.0, 1.0)
    tp = float(np.sum(p[pred_is_pos]))
    fp = float(np.sum(1 - p[pred_is_pos]))
    fn = float(np.sum(p[~pred_is_pos]))
    tn = float(np.sum(1 - p[~pred_is_pos]))
    n = tp + fp + fn + tn
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / n if n else float("nan"),
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
    }


def _window_metrics(
    df: pd.DataFrame, task: str, pos: str | None, min_labels: int, sensitive: list[str]
) -> tuple[dict[str, float], int, bool, dict[str, dict[str, dict[str, float]]], str]:
    labelled = df[df[LABEL_COLUMN].notna()] if LABEL_COLUMN in df.columns else df.iloc[0:0]
    groups: dict[str, dict[str, dict[str, float]]] = {}

    def compute(part: pd.DataFrame) -> dict[str, float]:
        if task == "regression":
            return _regression_metrics(
                part[LABEL_COLUMN].astype(float).to_numpy(), part["out.label"].astype(float).to_numpy()
            )
        y = part[LABEL_COLUMN].map(_label_key).to_numpy(dtype=object)
        pred = part["out.label"].map(_label_key).to_numpy(dtype=object)
        proba = part["out.proba"].to_numpy(dtype=float) if "out.proba" in part.columns else None
        return _classification_metrics(y.astype(str), pred.astype(str), proba, pos if task == "binary" else None)

    if len(labelled) >= min_labels:
        m = compute(labelled)
        for s in sensitive:
            col = s if s in labelled.columns else f"in.{s}"
            if col not in labelled.columns:
                continue
            groups[s] = {
                str(g): compute(part) for g, part in labelled.groupby(col, dropna=False) if len(part) >= 1
            }
        return m, len(labelled), False, groups, ""
    if task == "binary" and "out.proba" in df.columns and pos is not None and len(df):
        pred_pos = df["out.label"].map(_label_key).to_numpy(dtype=object).astype(str) == pos
        m = estimate_binary(pred_pos, df["out.proba"].to_numpy(dtype=float))
        return m, len(labelled), True, {}, f"only {len(labelled)} labels (< {min_labels}): estimated from confidence"
    note = f"only {len(labelled)} labels (< {min_labels}) and no probabilities to estimate"
    return {}, len(labelled), False, {}, note


def performance_by_window(
    log_df: pd.DataFrame,
    *,
    window: str | None = None,
    sensitive: list[str] | None = None,
    positive_label: str | None = None,
    min_labels: int = 30,
) -> list[WindowPerformance]:
    """Metrics per ``window`` (a pandas frequency like ``"1h"``; ``None`` = one window).

    ``log_df`` is the prediction log (answered requests) with a ``label`` column from
    :func:`join_labels` (rows without a label are estimated where possible).
    """
    if "out.label" not in log_df.columns:
        raise DataError("The prediction log has no 'out.label' column; cannot measure performance.")
    df = log_df[log_df["outcome"] == "ok"] if "outcome" in log_df.columns else log_df
    task = _task(df)
    pos = positive_label
    if task == "binary" and pos is None:
        seen = set(df["out.label"].dropna().map(_label_key))
        if LABEL_COLUMN in df.columns:
            seen |= set(df[LABEL_COLUMN].dropna().map(_label_key))
        pos = "1" if "1" in seen else (max(seen) if seen else None)
    sens = list(sensitive or [])
    if window is None or "ts" not in df.columns:
        m, nl, est, groups, note = _window_metrics(df, task, pos, min_labels, sens)
        start = df["ts"].min().isoformat() if "ts" in df.columns and len(df) else None
        end = df["ts"].max().isoformat() if "ts" in df.columns and len(df) else None
        return [WindowPerformance(start, end, task, len(df), nl, m, est, groups, note)]
    out = []
    try:
        keys = df["ts"].dt.floor(window)
    except ValueError as e:
        raise DataError(f"Window {window!r} is not a valid pandas frequency (e.g. '1h', '15min', '1D').") from e
    step = pd.tseries.frequencies.to_offset(window)
    for start, part in df.groupby(keys, sort=True):
        m, nl, est, groups, note = _window_metrics(part, task, pos, min_labels, sens)
        ts0 = pd.Timestamp(start)
        out.append(
            WindowPerformance(ts0.isoformat(), (ts0 + step).isoformat(), task, len(part), nl, m, est, groups, note)
        )
    return out
