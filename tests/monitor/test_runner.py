"""One monitoring window end to end: drift from lineage, labels, anomalies, attacks, alerts, rollback, history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd

from bastion.monitor.config import parse_monitoring_config
from bastion.monitor.performance import add_labels
from bastion.monitor.report import write_report
from bastion.monitor.runner import parse_duration, report_from_data, run_window

from .monitor_helpers import NOW, make_data, write_traffic


def test_shifted_traffic_alerts_rolls_back_and_is_stored(served: dict[str, Any], tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = served["project"]
    live = make_data(800, 1, shift=1.5)
    ids = write_traffic(p, "risk", 2, served["model"], live)
    add_labels(p, "risk", pd.DataFrame({"request_id": ids[:400], "y": live["y"].iloc[:400]}))
    cfg = parse_monitoring_config({"alerts": {"rollback": {"enabled": True}},
                                   "performance": {"floors": {"accuracy": 0.99}, "sensitive": ["sex"]}})
    res = run_window(p, "risk@production", window=timedelta(hours=1), end=NOW, config=cfg)
    assert res.model == "risk:2"
    assert "age" in res.drift.drifted_features and "income" not in res.drift.drifted_features
    assert res.drift.prediction_drift  # the model's outputs moved with the inputs
    [w] = res.performance
    assert w.n_labelled == 400 and not w.estimated and "F" in w.groups["in.sex"]
    assert res.anomaly is not None and res.anomaly.n == 800
    assert {a.signal for a in res.alerts} >= {"data_drift", "performance"}
    assert res.exit_code == 1
    assert res.rollback is not None and res.rollback["to_version"] == 1
    assert p.get_model("risk@production").version == 1
    assert res.history and res.history[-1]["dataset_drift"] is True
    from bastion.monitor.alerts import stored_alerts

    assert not (p.settings.home_path / "monitor" / "alerts.jsonl").exists()  # the log is the shared database's
    assert "data-drift" in {a["rule"] for a in stored_alerts(p.db, model="risk", kind="alert")}
    out = write_report(res, tmp_path / "r.html")
    html = out.read_text()
    assert "Plotly.newPlot" in html and "risk:2" in html and "Rolled back" in html


def test_clean_window_is_quiet_and_empty_window_is_safe(served: dict[str, Any]) -> None:
    p = served["project"]
    write_traffic(p, "risk", 2, served["model"], make_data(1500, 2))
    res = run_window(p, "risk@production", window=timedelta(hours=1), end=NOW)
    assert not res.drift.dataset_drift and res.alerts == () and res.exit_code == 0
    assert res.performance and res.performance[0].estimated  # no labels yet: flagged estimate
    empty = run_window(p, "risk@production", window=timedelta(hours=1), end=NOW + timedelta(days=3))
    assert empty.drift.n_current == 0 and empty.exit_code == 0 and empty.anomaly is None
    assert len(empty.history) == 2  # both windows stored


def test_report_from_data_with_log_files(served: dict[str, Any]) -> None:
    p = served["project"]
    write_traffic(p, "risk", 2, served["model"], make_data(600, 3, shift=1.0))
    files = str(p.settings.home_path / "predictions" / "risk" / "*.parquet")
    res = report_from_data(served["train"], files, target="y")
    assert "age" in res.drift.drifted_features
    assert [f.column for f in res.drift.features if f.prediction] == []  # no out.* in the training data
    assert res.drift.new_in_current == ()  # out.* and log columns are not "new features"


def test_reference_columns_the_log_does_not_hold_are_noted_not_reported_missing(served: dict[str, Any]) -> None:
    """A prediction log holds the model's inputs only: a training column the model does not take is not a
    schema change; a log sharing no input with the reference is a clear error."""
    import pytest

    from bastion.errors import DataError

    p = served["project"]
    write_traffic(p, "risk", 2, served["model"], make_data(600, 4))
    files = str(p.settings.home_path / "predictions" / "risk" / "*.parquet")
    reference = served["train"].assign(ward=[("A", "B")[i % 2] for i in range(len(served["train"]))])
    res = report_from_data(reference, files, target="y")
    assert res.drift.missing_in_current == ()
    assert "ward" not in [f.column for f in res.drift.features]
    assert any("ward" in n and "not in the prediction log" in n for n in res.notes)
    plain = make_data(600, 4).drop(columns=["income"])  # plain current data: a missing column is reported
    assert "income" in report_from_data(served["train"], plain, target="y").drift.missing_in_current
    with pytest.raises(DataError, match="shares no input column"):
        report_from_data(pd.DataFrame({"other": [1.0, 2.0, 3.0]}), files)


def test_parse_duration() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2d") == timedelta(days=2)
    import pytest

    from bastion.errors import DataError

    for bad in ("", "h", "-1h", "1w", "1.5h"):
        with pytest.raises(DataError):
            parse_duration(bad)
