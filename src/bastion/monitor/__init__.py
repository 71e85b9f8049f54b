"""Stage 4, monitoring: data and prediction drift, delayed-label performance, input anomalies,
attack patterns, alerts and reports, over the prediction log or data handed in directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.monitor.config import MonitoringConfig, load_monitoring_config
    from bastion.monitor.drift import DriftReport, FeatureDrift, compute_drift
    from bastion.monitor.prediction_log import (
        PredictionLogWriter,
        PredictionRecord,
        iter_prediction_log,
        read_prediction_log,
    )
    from bastion.monitor.report import render_html, write_report
    from bastion.monitor.runner import MonitorResult, report_from_data, run_window

__all__ = [
    "DriftReport",
    "FeatureDrift",
    "MonitorResult",
    "MonitoringConfig",
    "PredictionLogWriter",
    "PredictionRecord",
    "compute_drift",
    "iter_prediction_log",
    "load_monitoring_config",
    "read_prediction_log",
    "render_html",
    "report_from_data",
    "run_window",
    "write_report",
]

# Imported on first use, so `compute_drift` or the log writer (used by the server) do not pull in
# scikit-learn, skops or Jinja2.
_WHERE = {
    "MonitoringConfig": "config",
    "load_monitoring_config": "config",
    "DriftReport": "drift",
    "FeatureDrift": "drift",
    "compute_drift": "drift",
    "PredictionLogWriter": "prediction_log",
    "PredictionRecord": "prediction_log",
    "iter_prediction_log": "prediction_log",
    "read_prediction_log": "prediction_log",
    "render_html": "report",
    "write_report": "report",
    "MonitorResult": "runner",
    "report_from_data": "runner",
    "run_window": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"bastion.monitor.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'bastion.monitor' has no attribute {name!r}")
