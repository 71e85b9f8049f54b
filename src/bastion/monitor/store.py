"""Monitoring results stored per window as ``monitor_window`` attachments of the model version,
so later reports and the dashboard can show history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["WINDOW_KIND", "load_history", "save_window", "summarize_window"]

WINDOW_KIND = "monitor_window"


def _feature_summary(f: dict[str, Any]) -> dict[str, Any]:
    from bastion.monitor.figures import compact_histogram, drift_score

    test = (f.get("tests") or {}).get(f.get("verdict_test")) or {}
    out = {k: f.get(k) for k in ("column", "kind", "drifted", "verdict_test", "threshold", "p_value",
                                 "p_value_adjusted", "missing_current", "prediction")}
    out["statistic"] = test.get("statistic")
    out["basis"] = test.get("basis")
    out["score"] = drift_score(basis=test.get("basis"), statistic=test.get("statistic"),
                               threshold=f.get("threshold"), p_value_adjusted=f.get("p_value_adjusted"))
    out["histogram"] = compact_histogram(f.get("histogram"))
    return out


def summarize_window(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a window result kept in history (histograms rounded, so history stays small)."""
    drift = doc.get("drift") or {}
    feats = [_feature_summary(f) for f in drift.get("features", [])]
    return {
        "schema_version": 1,
        "kind": WINDOW_KIND,
        "model": doc.get("model"),
        "window_start": doc.get("window_start"),
        "window_end": doc.get("window_end"),
        "n_current": drift.get("n_current"),
        "dataset_drift": drift.get("dataset_drift"),
        "prediction_drift": drift.get("prediction_drift"),
        "drifted_features": drift.get("drifted_features", []),
        "drift_share": drift.get("drift_share"),
        "features": feats,
        "performance": doc.get("performance") or [],
        "anomaly": doc.get("anomaly"),
        "attacks": doc.get("attacks") or [],
        "alerts": [
            {"id": a.get("id"), "rule": a.get("rule"), "severity": a.get("severity")} for a in doc.get("alerts") or []
        ],
        "rollback": doc.get("rollback"),
    }


def save_window(project: ProjectHandle, model_ref: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Attach the summary of one window result to ``model_ref``; returns what was stored."""
    summary = summarize_window(doc)
    project.attach(model_ref, WINDOW_KIND, summary)
    return summary


def load_history(project: ProjectHandle, model_ref: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Stored window summaries of ``model_ref``, oldest first."""
    docs = [d for d in project.attachments(model_ref, WINDOW_KIND) if d.get("schema_version") == 1]
    docs.sort(key=lambda d: d.get("window_end") or "")
    return docs[-limit:] if limit else docs
