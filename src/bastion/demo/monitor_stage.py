"""Demo stage 4: shifted traffic into the prediction log, delayed labels, a monitoring window that
raises a drift alert and rolls the alias back, and the HTML report in the work folder.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from bastion.errors import RegistryError
from bastion.monitor.config import parse_monitoring_config
from bastion.monitor.performance import add_labels
from bastion.monitor.prediction_log import PredictionLogWriter, PredictionRecord
from bastion.monitor.report import write_report
from bastion.monitor.runner import run_window

__all__ = ["run", "shift_traffic"]


def shift_traffic(df: pd.DataFrame, *, features: list[str], seed: int = 7) -> pd.DataFrame:
    """A copy of ``df`` with the two widest numeric features shifted by one standard deviation."""
    out = df.copy()
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(out[c])]
    rng = np.random.default_rng(seed)
    for c in sorted(numeric, key=lambda c: -float(out[c].std()))[:2]:
        out[c] = out[c] + out[c].std() * (1.0 + 0.1 * rng.standard_normal(len(out)))
        if pd.api.types.is_integer_dtype(df[c]):
            out[c] = out[c].round().astype(df[c].dtype)
    return out


def run(ctx: Any) -> None:
    p = ctx.project
    approved = ctx.state["approved_ref"]
    target = ctx.state["target"]
    mv = p.get_model(approved)
    model = p.load_model(mv.ref)
    test = ctx.state["test_df"]
    features = ctx.state.get("features") or [c for c in test.columns if c != target]
    live = shift_traffic(test.head(3000).reset_index(drop=True), features=features)
    X = live[features]
    labels_pred = np.asarray(model.predict(X))
    proba = model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else None
    now = datetime.now(UTC)
    start = now - timedelta(minutes=55)
    with PredictionLogWriter(p, mv.name, max_rows=1000) as w:
        for i in range(len(live)):
            lab = labels_pred[i]
            out: dict[str, Any] = {"label": lab.item() if hasattr(lab, "item") else lab}
            if proba is not None:
                out["proba"] = float(proba[i])
            w.append(PredictionRecord(
                request_id=f"demo-{i}", version=mv.version, key_id="demo-app", client="10.1.0.7", latency_ms=3.0,
                ts=start + timedelta(seconds=i), inputs={c: X[c].iat[i] for c in features}, outputs=out,
            ))
        for i in range(25):  # someone guessing API keys
            w.append(PredictionRecord(request_id=f"bad-{i}", version=mv.version, outcome="unauthorized",
                                      client="203.0.113.9", ts=start + timedelta(seconds=3000 + i)))
        files = len(w.files_written) + 1
    ctx.say(f"Logged {len(live):,} shifted requests (+25 refused) for {mv.ref} in {files} Parquet file(s)")
    truth = pd.DataFrame({"request_id": [f"demo-{i}" for i in range(len(live))], "label": live[target]})
    add_labels(p, mv.name, truth.iloc[: len(truth) // 2])
    ctx.say(f"Delayed labels arrived for {len(truth) // 2:,} requests")

    alias = "production" if "production" in mv.aliases else None
    cfg = parse_monitoring_config({"alerts": {"rollback": {"enabled": alias is not None, "alias": alias or "production",
                                                            "on": ["data_drift"]}}})
    monitored = f"{mv.name}@{alias}" if alias else mv.ref
    try:
        res = run_window(p, monitored, window=timedelta(hours=1), end=now + timedelta(seconds=1), config=cfg)
    except RegistryError as e:  # e.g. nothing to roll back to
        ctx.say(f"[yellow]Rollback not possible:[/] {e}")
        cfg = parse_monitoring_config({})
        res = run_window(p, monitored, window=timedelta(hours=1), end=now + timedelta(seconds=1), config=cfg)
    drifted = ", ".join(res.drift.drifted_features) or "none"
    ctx.say(f"Drift: {res.drift.n_drifted} feature(s) drifted ({drifted}); "
            f"prediction drift: {res.drift.prediction_drift}")
    for w_ in res.performance:
        tag = " (estimated)" if w_.estimated else ""
        ctx.say("Accuracy with delayed labels: " + f"{w_.metrics.get('accuracy', float('nan')):.3f}{tag}")
    if res.anomaly:
        ctx.say(f"Anomalous inputs: {res.anomaly.share:.1%}")
    for a in res.attacks:
        ctx.say(f"Attack finding: {a.message}")
    for alert in res.alerts:
        ctx.say(f"[bold red]ALERT[/] {alert.rule}: {alert.message[:120]}")
    if res.rollback and not res.rollback.get("skipped"):
        ctx.say(f"[bold]Rolled back[/] {res.rollback['model']}@{res.rollback['alias']} to version "
                f"{res.rollback['to_version']} (audited)")
    path = write_report(res, ctx.workdir / "monitor-report.html")
    ctx.say(f"HTML report: {path}")
    ctx.state["monitor_report"] = path
    ctx.state["monitor_alerts"] = [a.rule for a in res.alerts]
