"""Helpers for monitoring tests: synthetic people data and logged traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from bastion.monitor.prediction_log import PredictionLogWriter, PredictionRecord

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def make_data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(45 + shift * 10, 10, n).round(),
            "income": rng.lognormal(10, 0.5, n),
            "sex": rng.choice(["F", "M"], n),
        }
    )
    logit = (df["age"] - 45) / 8 + (df["sex"] == "F") * 0.3
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def write_traffic(project: Any, model: str, version: int, model_obj: Any, df: pd.DataFrame, *, end: datetime = NOW,
                  key: str = "app") -> list[str]:
    X = df[["age", "income", "sex"]]
    proba = model_obj.predict_proba(X)[:, 1]
    label = model_obj.predict(X)
    ids = []
    with PredictionLogWriter(project, model, max_rows=500) as w:
        for i in range(len(df)):
            rid = f"{key}-{i}"
            ids.append(rid)
            w.append(PredictionRecord(
                request_id=rid, version=version, key_id=key, client="10.0.0.1", latency_ms=2.0,
                ts=end - timedelta(minutes=50) + timedelta(seconds=i * 2999 / max(len(df), 1)),
                inputs={"age": float(X.age.iat[i]), "income": float(X.income.iat[i]), "sex": X.sex.iat[i]},
                outputs={"label": int(label[i]), "proba": float(proba[i])},
            ))
    return ids
