"""Input anomalies: IsolationForest fit on the reference, stored with skops, share per window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from bastion.errors import DataError, UnsafeArtifactError
from bastion.monitor.anomaly import (
    ATTACHMENT_KIND,
    fit_anomaly_model,
    load_anomaly_model,
    save_anomaly_model,
    score_anomalies,
)
from bastion.monitor.config import AnomalyConfig


def _data(n: int, seed: int, outliers: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n), "y": 0})
    k = int(n * outliers)
    df.loc[: k - 1, "a"] = rng.uniform(8, 12, k)
    df.loc[: k - 1, "c"] = "never-seen"
    return df


def test_share_of_anomalies() -> None:
    am = fit_anomaly_model(_data(3000, 0), exclude=["y"])
    assert am.features == ["a", "b", "c"]
    normal = score_anomalies(am, _data(2000, 1), chunk_rows=500)
    assert normal.share < 0.05 and not normal.exceeded
    bad = score_anomalies(am, _data(2000, 2, outliers=0.2))
    assert bad.share > 0.15 and bad.exceeded
    assert score_anomalies(am, _data(2000, 2).iloc[0:0]).n == 0
    with pytest.raises(DataError, match="lack the columns"):
        score_anomalies(am, _data(10, 1).drop(columns=["b"]))


def test_persisted_with_skops_and_verified(project: Any) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression().fit(np.arange(10.0).reshape(-1, 1), [0, 1] * 5)
    mv = project.log_model(m, name="clf")
    assert load_anomaly_model(project, mv.ref) is None
    am = fit_anomaly_model(_data(1000, 0), config=AnomalyConfig(n_estimators=20), exclude=["y"])
    save_anomaly_model(project, mv.ref, am)
    loaded = load_anomaly_model(project, mv.ref)
    assert loaded is not None and loaded.features == am.features
    x = _data(300, 5)
    assert score_anomalies(loaded, x).n_anomalous == score_anomalies(am, x).n_anomalous
    # A stored file with unexpected types is refused.
    evil = project.blobs.put_bytes(sio.dumps({"x": LogisticRegression()}))
    doc = project.attachments(mv.ref, ATTACHMENT_KIND)[-1] | {"digest": evil}
    project.attach(mv.ref, ATTACHMENT_KIND, doc)
    with pytest.raises(UnsafeArtifactError, match="not an IsolationForest"):
        load_anomaly_model(project, mv.ref)


def test_empty_reference_refused() -> None:
    with pytest.raises(DataError, match="empty"):
        fit_anomaly_model(_data(10, 0).iloc[0:0])
