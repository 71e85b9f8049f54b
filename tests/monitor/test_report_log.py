"""`monitor report` on prediction-log files reads them as `monitor run` does: refused requests (401, 422,
429: logged without inputs) are left out instead of counted as missing values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bastion.monitor.prediction_log import PredictionLogWriter, PredictionRecord
from bastion.monitor.runner import report_from_data


def test_refused_requests_are_not_missing_values(project: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"age": rng.normal(40, 5, 500), "plan": rng.choice(["a", "b"], 500)})
    ref_path = tmp_path / "ref.parquet"
    ref.to_parquet(ref_path)
    now = datetime.now(UTC)
    with PredictionLogWriter(project, "m") as w:
        for i in range(300):
            w.append(PredictionRecord(request_id=f"ok{i}", version=1, ts=now,
                                      inputs={"age": float(rng.normal(40, 5)), "plan": str(rng.choice(["a", "b"]))},
                                      outputs={"label": 1}))
        for i, outcome in enumerate(["unauthorized"] * 20 + ["invalid"] * 10):
            w.append(PredictionRecord(request_id=f"bad{i}", version=1, ts=now, outcome=outcome))
    logs = sorted(str(p) for p in (project.settings.home_path / "predictions" / "m").rglob("*.parquet"))
    assert logs
    res = report_from_data(str(ref_path), logs).to_dict()
    feats = {f["column"]: f for f in res["drift"]["features"]}
    assert set(feats) == {"age", "plan"}
    assert all(f["missing_current"] == 0 for f in feats.values()), feats
    assert res["drift"]["n_current"] == 300 and not res["drift"]["dataset_drift"]
    assert any("30 refused request(s)" in n for n in res["notes"])
    # the same log as a DataFrame
    frame = pd.concat([pd.read_parquet(p) for p in logs])
    res2 = report_from_data(ref, frame).to_dict()
    assert res2["drift"]["n_current"] == 300


def test_report_and_run_agree_on_the_same_window(project: Any) -> None:
    from datetime import timedelta

    from sklearn.linear_model import LogisticRegression

    from bastion.monitor.config import MonitoringConfig
    from bastion.monitor.runner import run_window

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"age": rng.normal(40, 5, 1500), "income": rng.normal(50, 10, 1500)})
    train["y"] = (train["income"] + rng.normal(0, 5, 1500) > 50).astype(int)
    ds = project.register_dataset(train, name="t")
    model = LogisticRegression().fit(train[["age", "income"]], train["y"])
    mv = project.log_model(model, name="m", datasets=[ds.ref], params={"target": "y"})
    live = pd.DataFrame({"age": rng.normal(55, 5, 400), "income": rng.normal(70, 10, 400)})  # drifted inputs
    proba = model.predict_proba(live)[:, 1]
    end = datetime.now(UTC)
    with PredictionLogWriter(project, "m") as w:
        for i in range(len(live)):
            w.append(PredictionRecord(request_id=f"r{i}", version=mv.version, ts=end - timedelta(minutes=10),
                                      inputs={"age": float(live["age"][i]), "income": float(live["income"][i])},
                                      outputs={"label": int(proba[i] > 0.5), "proba": float(proba[i])}))
        for i in range(40):
            w.append(PredictionRecord(request_id=f"x{i}", version=mv.version, ts=end - timedelta(minutes=10),
                                      outcome="unauthorized"))
    cfg = MonitoringConfig()
    run = run_window(project, mv.ref, window=timedelta(hours=1), end=end, config=cfg, dispatch=False,
                     store=False).to_dict()
    logs = sorted(str(p) for p in (project.settings.home_path / "predictions" / "m").rglob("*.parquet"))
    rep = report_from_data(project.read_dataset(ds.ref), logs, target="y", config=cfg, project=project,
                           model_ref=mv.ref).to_dict()
    for key in ("dataset_drift", "prediction_drift", "n_current"):
        assert rep["drift"][key] == run["drift"][key], key
    assert rep["drift"]["prediction_drift"] is True and rep["drift"]["n_current"] == 400
    assert sorted(rep["drift"]["drifted_features"]) == sorted(run["drift"]["drifted_features"])
    assert rep["anomaly"] is not None and run["anomaly"] is not None
    assert rep["anomaly"]["share"] == pytest.approx(run["anomaly"]["share"])
    assert all(f["missing_current"] == 0 for f in rep["drift"]["features"])
