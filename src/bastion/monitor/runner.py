"""One monitoring pass: drift, performance, anomalies, attacks, alerts, rollback and history, either
over a window of a registered model's prediction log or over reference/current data handed in directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from bastion.errors import BastionError, DataError
from bastion.monitor._source import TableSource
from bastion.monitor.alerts import Alert, Delivery, deliver, evaluate_alerts, maybe_rollback
from bastion.monitor.anomaly import (
    AnomalyResult,
    fit_anomaly_model,
    load_anomaly_model,
    save_anomaly_model,
    score_anomalies,
)
from bastion.monitor.attacks import AttackFinding, detect_attacks
from bastion.monitor.config import MonitoringConfig
from bastion.monitor.drift.interface import _jsonable_dict
from bastion.monitor.drift.run import DriftReport, compute_drift, dataset_verdict
from bastion.monitor.performance import WindowPerformance, join_labels, performance_by_window, read_labels
from bastion.monitor.prediction_log import (
    BASE_COLUMNS,
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    prediction_log_files,
    read_prediction_log,
)
from bastion.monitor.store import load_history, save_window

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["MonitorResult", "alert_log_path", "parse_duration", "reference_for_model", "report_from_data", "run_window"]

log = logging.getLogger("bastion.monitor")
_LOWER_IS_BETTER = {"rmse", "mae"}


@dataclass(frozen=True)
class MonitorResult:
    """Everything one monitoring pass found."""

    drift: DriftReport
    model: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    performance: tuple[WindowPerformance, ...] = ()
    breaches: tuple[dict[str, Any], ...] = ()
    anomaly: AnomalyResult | None = None
    attacks: tuple[AttackFinding, ...] = ()
    alerts: tuple[Alert, ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    rollback: dict[str, Any] | None = None
    history: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    target: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def exit_code(self) -> int:
        """1 when any alert was raised, else 0 (the CLI exits with this)."""
        return 1 if self.alerts else 0

    def to_dict(self) -> dict[str, Any]:
        perf = []
        for w in self.performance:
            d = w.to_dict()
            d["breaches"] = [b for b in self.breaches if b.get("start") == w.start]
            perf.append(d)
        return _jsonable_dict(
            {
                "schema_version": 1,
                "kind": "monitor_result",
                "created": self.created,
                "model": self.model,
                "target": self.target,
                "window_start": self.window_start,
                "window_end": self.window_end,
                "drift": self.drift.to_dict(),
                "performance": perf,
                "anomaly": self.anomaly.to_dict() if self.anomaly else None,
                "attacks": [a.to_dict() for a in self.attacks],
                "alerts": [a.to_dict() for a in self.alerts],
                "deliveries": [d.to_dict() for d in self.deliveries],
                "rollback": self.rollback,
                "history": list(self.history),
                "notes": list(self.notes),
            }
        )


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"2d"`` -> timedelta (strict)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    if len(t) < 2 or t[-1] not in units or not t[:-1].isdigit() or int(t[:-1]) <= 0:
        raise DataError(f"Duration must be a positive number with a unit s, m, h or d (e.g. '1h'); got {text!r}.")
    return timedelta(seconds=int(t[:-1]) * units[t[-1]])


def _breaches(perf: list[WindowPerformance], floors: dict[str, float]) -> list[dict[str, Any]]:
    out = []
    for w in perf:
        for metric, floor in floors.items():
            v = w.metrics.get(metric)
            if v is None or not np.isfinite(v):
                continue
            bad = v > floor if metric in _LOWER_IS_BETTER else v < floor
            if bad:
                out.append({"start": w.start, "metric": metric, "value": v, "floor": floor, "estimated": w.estimated})
    return out


def _is_log(columns: list[str]) -> bool:
    return any(c.startswith(INPUT_PREFIX) for c in columns)


def report_from_data(
    reference: Any,
    current: Any,
    *,
    target: str | None = None,
    config: MonitoringConfig | None = None,
    engine: Any = None,
    progress: Callable[[int, int], None] | None = None,
    project: ProjectHandle | None = None,
    model_ref: str | None = None,
) -> MonitorResult:
    """Monitor ``current`` against ``reference`` (without a registry, or for ``model_ref`` of ``project``).

    ``current`` may be plain feature data or prediction-log files (``in.``/``out.`` columns). With
    ``target``, the target column is compared as target drift, and when ``current`` also holds
    ``out.label`` predictions, performance is measured against it. With ``project`` and ``model_ref``,
    a prediction log is read as ``monitor run`` reads it (that version's answered requests), the model's
    outputs on the reference are compared with the logged ones (prediction drift) and inputs are scored
    for anomalies, so a report and a run over the same window agree.
    """
    cfg = config or MonitoringConfig()
    ref = TableSource.from_any(reference)
    cur = TableSource.from_any(current)
    notes: list[str] = []
    mv = project.get_model(model_ref) if project is not None and model_ref is not None else None
    compare = [c for c in ref.columns if c not in BASE_COLUMNS and c != target]
    if _is_log(cur.columns):
        # Only answered requests, as `monitor run` reads them: a refused request (401, 422, 429) logged
        # no inputs, and must not count as missing values.
        cur, refused = _answered_only(cur, version=mv.version if mv is not None else None)
        if refused:
            notes.append(f"{refused:,} refused request(s) or other versions' rows in the log left out")
        rename = {c: c[len(INPUT_PREFIX) :] for c in cur.columns if c.startswith(INPUT_PREFIX)}
        cur = cur.renamed(rename)
        # A prediction log holds the model's inputs only: reference columns the model does not take (or the
        # server does not log) are not a schema change, so they are noted rather than reported missing.
        unlogged = [c for c in compare if c not in rename.values()]
        if unlogged:
            notes.append(f"reference columns not in the prediction log (not model inputs): {', '.join(unlogged)}")
        compare = [c for c in compare if c in rename.values()]
        if not compare:
            raise DataError(
                "The prediction log shares no input column with the reference "
                f"(log inputs: {', '.join(sorted(rename.values())) or 'none'}); is it the log of another model?"
            )
    if target and target in ref.columns and target in cur.columns:
        compare.append(target)
    columns = compare
    features = list(compare)
    outputs = [c for c in cur.columns if c.startswith(OUTPUT_PREFIX)]
    if mv is not None and project is not None and outputs and cur.num_rows:
        ref_frame = pd.DataFrame({c: ref.column(c).to_pandas() for c in features if c != target})
        try:
            preds = _reference_predictions(project, mv.ref, ref_frame)
            joined = ref_frame.loc[preds.index].join(preds)
            if target and target in ref.columns:
                joined[target] = ref.column(target).to_pandas().loc[preds.index]
            ref = TableSource.from_any(joined)
            columns = columns + [c for c in preds.columns if c in outputs]
        except (BastionError, ValueError, TypeError, AttributeError) as e:
            notes.append(f"prediction drift skipped: cannot score the reference ({type(e).__name__})")
    drift = compute_drift(ref, cur, columns=columns, config=cfg.drift, engine=engine, progress=progress)
    drift = _mark_target(drift, target, cfg)
    drift = _only_feature_news(drift)
    perf: list[WindowPerformance] = []
    if target and "out.label" in cur.columns and target in cur.columns:
        cols = ["out.label", target] + [c for c in ("out.proba", "ts") if c in cur.columns]
        cols += [s for s in cfg.performance.sensitive if s in cur.columns]
        df = pd.DataFrame({c: cur.column(c).to_pandas() for c in cols}).rename(columns={target: "label"})
        perf = performance_by_window(df, sensitive=cfg.performance.sensitive, min_labels=cfg.performance.min_labels,
                                     positive_label=cfg.performance.positive_label)
    elif target:
        notes.append("no 'out.label' predictions in the current data: performance not measured")
    breaches = _breaches(perf, cfg.performance.floors)
    anomaly = None
    if mv is not None and project is not None and cfg.anomaly.enabled and cur.num_rows and \
            any(c != target and c in cur.columns for c in features):
        inputs = [c for c in features if c != target and c in cur.columns]
        am = load_anomaly_model(project, mv.ref)
        if am is None or set(am.features) - set(inputs):  # fit on what this data has (not stored)
            base = TableSource.from_any(reference)
            am = fit_anomaly_model(pd.DataFrame({c: base.column(c).to_pandas() for c in inputs}),
                                   config=cfg.anomaly, trained_on=mv.ref)
        anomaly = score_anomalies(am, cur.iter_frames([c for c in am.features if c in cur.columns]),
                                  config=cfg.anomaly)
    result = MonitorResult(drift=drift, performance=tuple(perf), breaches=tuple(breaches), notes=tuple(notes),
                           target=target, anomaly=anomaly, model=mv.ref if mv is not None else None)
    alerts = evaluate_alerts(result.to_dict(), cfg.alerts, model=mv.ref if mv is not None else "(no registry)")
    return _replace(result, alerts=tuple(alerts))


def _answered_only(src: TableSource, *, version: int | None = None) -> tuple[TableSource, int]:
    """A prediction log restricted to ``outcome == "ok"`` rows (of ``version``), and how many were left out."""
    import pyarrow.compute as pc

    if "outcome" not in src.columns:
        return src, 0
    before = src.num_rows
    expr = pc.field("outcome") == "ok"
    if version is not None and "version" in src.columns:
        expr = expr & (pc.field("version") == version)
    if src.paths is not None:
        ok = TableSource.from_log(src.paths, filter=expr)
    else:
        table = pa.Table.from_pandas(src._frame, preserve_index=False) if src._frame is not None else src._table
        assert table is not None
        ok = TableSource.from_any(table.filter(expr))
    return ok, before - ok.num_rows


def _mark_target(drift: DriftReport, target: str | None, cfg: MonitoringConfig) -> DriftReport:
    if not target:
        return drift
    from dataclasses import replace

    feats = tuple(
        replace(f, prediction=True, note=f.note or "target") if f.column == target else f for f in drift.features
    )
    dataset_drift, n_drifted, share = dataset_verdict(feats, drift.n_current, cfg.drift, drift.missing_in_current)
    return replace(
        drift,
        features=feats,
        n_drifted=n_drifted,
        drift_share=share,
        dataset_drift=dataset_drift,
        prediction_drift=drift.n_current > 0 and any(f.drifted for f in feats if f.prediction),
    )


def _only_feature_news(drift: DriftReport) -> DriftReport:
    from dataclasses import replace

    new = tuple(c for c in drift.new_in_current if not c.startswith(OUTPUT_PREFIX) and c not in BASE_COLUMNS)
    return replace(drift, new_in_current=new)


def _replace(r: MonitorResult, **kw: Any) -> MonitorResult:
    from dataclasses import replace

    return replace(r, **kw)


def reference_for_model(project: ProjectHandle, model_ref: str) -> tuple[Any, pd.DataFrame, str]:
    """The model version, its training dataset (first in lineage) and that dataset's reference."""
    mv = project.get_model(model_ref)
    if not mv.datasets:
        raise DataError(
            f"Model {mv.ref} has no dataset in its lineage; give --reference explicitly or log the model "
            "with datasets=[...]."
        )
    from bastion.registry._models import audited_lineage

    # the reference decides what drift is seen: taken from the audited registration, never the row alone
    ds_ref = audited_lineage(project, mv)[0]
    return mv, project.read_dataset(ds_ref), ds_ref


def _reference_predictions(
    project: ProjectHandle, model_ref: str, features: pd.DataFrame, limit: int = 50_000
) -> pd.DataFrame:
    """The model's outputs on (a sample of) its reference, named like the log's ``out.`` columns."""
    X = features.sample(limit, random_state=0) if len(features) > limit else features
    model = project.load_model(model_ref)
    out = pd.DataFrame(index=X.index)
    out["out.label"] = np.asarray(model.predict(X))
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X))
        if proba.ndim == 2 and proba.shape[1] == 2:
            out["out.proba"] = proba[:, 1]
    return out


def _window_filter(start: datetime, end: datetime, version: int | None) -> Any:
    """Rows of the window ``[start, end)`` answered (``outcome == "ok"``) by ``version``."""
    lo = pa.scalar(start.astimezone(UTC), type=pa.timestamp("us", tz="UTC"))
    hi = pa.scalar(end.astimezone(UTC), type=pa.timestamp("us", tz="UTC"))
    expr = (pads.field("ts") >= lo) & (pads.field("ts") < hi) & (pads.field("outcome") == "ok")
    if version is not None:
        expr = expr & (pads.field("version") == version)
    return expr


def _window_columns(files: list[Path], window_filter: Any, columns: list[str]) -> pd.DataFrame:
    """Only ``columns`` of the filtered window, read chunk by chunk and kept as one small frame."""
    src = TableSource.from_log(files, filter=window_filter)
    present = [c for c in columns if c in src.columns]
    parts = [pa.Table.from_batches([b]) for b in src._ds().to_batches(columns=present, filter=window_filter)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in present})
    df = pa.concat_tables(parts, promote_options="permissive").to_pandas()
    return df.sort_values("ts", kind="stable").reset_index(drop=True) if "ts" in df.columns else df


def alert_log_path(project: ProjectHandle, config: MonitoringConfig) -> Path | None:
    """The local JSON-lines copy of the alert log, when ``monitoring.alerts.log`` asks for one; the alert log
    itself is the project database's (shared by every machine)."""
    if config.alerts.log:
        p = Path(config.alerts.log)
        return p if p.is_absolute() else Path(project.settings.root) / p
    return None


def run_window(
    project: ProjectHandle,
    model_ref: str,
    *,
    window: timedelta = timedelta(hours=1),
    end: datetime | None = None,
    config: MonitoringConfig | None = None,
    engine: Any = None,
    target: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    dispatch: bool = True,
    store: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> MonitorResult:
    """Monitor the window ``[end - window, end)`` of ``model_ref``'s prediction log.

    The reference is the training dataset in the model's lineage. Alerts are delivered (local log,
    webhook), the alias is rolled back when the config says so, and the window is stored in history.
    """
    cfg = config or MonitoringConfig()
    mv, reference, ds_ref = reference_for_model(project, model_ref)
    version_ref = mv.ref
    end = end or datetime.now(UTC)
    start = end - window
    target = target or mv.params.get("target") or mv.tags.get("target")
    notes: list[str] = [f"reference: dataset {ds_ref}"]

    # The window streams from the log files: one column (drift) or one chunk of rows (anomalies) at a
    # time, through a row filter (window, this version, answered requests), never as one frame.
    files = prediction_log_files(project, mv.name)
    window_filter = _window_filter(start, end, mv.version)
    current: TableSource | None = None
    if files:
        current = TableSource.from_log(files, filter=window_filter)
        current = current.renamed({c: c[len(INPUT_PREFIX) :] for c in current.columns if c.startswith(INPUT_PREFIX)})
    n_current = current.num_rows if current is not None else 0
    log_features = [c for c in current.columns if c not in BASE_COLUMNS and not c.startswith(OUTPUT_PREFIX)] \
        if current is not None else []
    features = [c for c in reference.columns if c in log_features] or [
        c for c in reference.columns if c != target
    ]
    ref_frame = reference[features]
    outputs = [c for c in current.columns if c.startswith(OUTPUT_PREFIX)] if current is not None else []
    if n_current and outputs:
        try:
            preds = _reference_predictions(project, version_ref, reference[features])
            ref_frame = ref_frame.join(preds, how="left") if len(preds) == len(ref_frame) else pd.concat(
                [ref_frame.loc[preds.index], preds], axis=1
            )
        except (BastionError, ValueError, TypeError, AttributeError) as e:
            notes.append(f"prediction drift skipped: cannot score the reference ({type(e).__name__})")
    cols = [c for c in ref_frame.columns if c in outputs or not c.startswith(OUTPUT_PREFIX)]
    cur_input: Any = current if current is not None else pd.DataFrame({c: [] for c in features})
    drift = compute_drift(ref_frame, cur_input, columns=cols, config=cfg.drift, engine=engine, progress=progress)

    # Performance from delayed labels (or an estimate from confidence): only the columns it needs.
    perf: list[WindowPerformance] = []
    if n_current and "out.label" in outputs:
        sensitive = [f"in.{s}" for s in cfg.performance.sensitive]
        wanted = ["request_id", "ts", *[c for c in ("out.label", "out.proba") if c in outputs], *sensitive]
        ok = _window_columns(files, window_filter, wanted)
        joined = join_labels(ok, read_labels(project, mv.name))
        perf = performance_by_window(joined, sensitive=[f"in.{s}" if f"in.{s}" in joined.columns else s
                                                        for s in cfg.performance.sensitive],
                                     positive_label=cfg.performance.positive_label,
                                     min_labels=cfg.performance.min_labels)
    breaches = _breaches(perf, cfg.performance.floors)

    # Input anomalies against a forest fit on the training data (fit once, stored with the version),
    # scored chunk by chunk: only the flagged count is kept.
    anomaly = None
    if cfg.anomaly.enabled and n_current and current is not None:
        am = load_anomaly_model(project, version_ref)
        if am is None or set(am.features) - set(features):
            am = fit_anomaly_model(reference[features], config=cfg.anomaly, trained_on=ds_ref)
            save_anomaly_model(project, version_ref, am)
        present = [c for c in features if c in current.columns]
        anomaly = score_anomalies(am, current.iter_frames(present), config=cfg.anomaly)

    # Attack patterns, with the previous day of traffic as the per-key baseline. The rules compare
    # each key's inputs with one another (distinct inputs, near-duplicate walks), so they read the
    # window's rows, but only the columns they use (no outputs, latencies or request ids).
    attack_cols = ["ts", "version", "key_id", "client", "outcome"]
    logdf = read_prediction_log(project, mv.name, start=start, end=end,
                                columns=attack_cols + [f"{INPUT_PREFIX}{c}" for c in log_features])
    if "version" in logdf.columns and len(logdf):
        logdf = logdf[logdf["version"] == mv.version].reset_index(drop=True)
    base_start = start - timedelta(days=1)
    baseline = read_prediction_log(project, mv.name, start=base_start, end=start,
                                   columns=attack_cols + [f"{INPUT_PREFIX}{c}" for c in log_features])
    scales = {c: float(reference[c].std()) for c in features if pd.api.types.is_numeric_dtype(reference[c])}
    attacks = detect_attacks(logdf, cfg.attacks, baseline=baseline if len(baseline) else None,
                             baseline_scale=window / timedelta(days=1), scales=scales)
    del logdf, baseline

    result = MonitorResult(
        drift=drift, model=version_ref, window_start=start.isoformat(), window_end=end.isoformat(),
        performance=tuple(perf), breaches=tuple(breaches), anomaly=anomaly, attacks=tuple(attacks),
        notes=tuple(notes), target=target,
    )
    alerts = evaluate_alerts(result.to_dict(), cfg.alerts, model=version_ref)
    deliveries: list[Delivery] = []
    rollback = None
    if dispatch and alerts:
        deliveries = deliver(alerts, cfg.alerts, db=project.db, log_path=alert_log_path(project, cfg), sleep=sleep,
                             root=project.settings.root)
        rollback = maybe_rollback(project, mv.name, alerts, cfg.alerts.rollback, monitored_version=mv.version)
    result = _replace(result, alerts=tuple(alerts), deliveries=tuple(deliveries), rollback=rollback)
    history: list[dict[str, Any]] = []
    if store:
        save_window(project, version_ref, result.to_dict())
        history = load_history(project, version_ref, limit=200)
    return _replace(result, history=tuple(history))
