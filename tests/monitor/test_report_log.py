"""`monitor report` on prediction-log files reads them as `monitor run` does: refused requests (401, 422,
429: logged without inputs) are left out instead of counted as missing values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
