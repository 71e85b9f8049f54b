"""Delayed-label performance: join by request id, per window and group, estimates flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from bastion.errors import DataError
from bastion.monitor.performance import add_labels, estimate_binary, join_labels, performance_by_window, read_labels

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _log(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    proba = rng.random(n)
    y = (rng.random(n) < proba).astype(int)  # calibrated by construction
    log = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "ts": [T0 + timedelta(minutes=i) for i in range(n)],
            "outcome": "ok",
            "in.sex": rng.choice(["F", "M"], n),
            "out.label": (proba > 0.5).astype(int),
            "out.proba": proba,
        }
    )
    return log, pd.DataFrame({"request_id": log["request_id"], "label": y})


def test_metrics_equal_sklearn_and_per_group() -> None:
    log, labels = _log()
    joined = join_labels(log, labels)
    [w] = performance_by_window(joined, sensitive=["in.sex"])
    y, pred, p = labels["label"].to_numpy(), log["out.label"].to_numpy(), log["out.proba"].to_numpy()
    assert not w.estimated and w.task == "binary" and w.n_labelled == 400
    assert w.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert w.metrics["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert w.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    female = log["in.sex"] == "F"
    assert w.groups["in.sex"]["F"]["recall"] == pytest.approx(skm.recall_score(y[female], pred[female]))


def test_windows_and_estimates_when_labels_are_missing() -> None:
    log, labels = _log(600, 1)
    joined = join_labels(log, labels.iloc[:300])  # labels only for the first 5 hours
    windows = performance_by_window(joined, window="1h", min_labels=30)
    assert len(windows) == 10
    assert [w.estimated for w in windows] == [False] * 5 + [True] * 5
    est = windows[-1]
    assert "estimated" in est.note and "roc_auc" not in est.metrics
    # The estimate is close to the truth for calibrated probabilities.
    truth = join_labels(log, labels)
    actual = performance_by_window(truth.iloc[-300:], min_labels=30)[0].metrics["accuracy"]
    estimated = performance_by_window(join_labels(log.iloc[-300:], labels.iloc[:0]), min_labels=30)[0]
    assert estimated.estimated and estimated.metrics["accuracy"] == pytest.approx(actual, abs=0.06)


def test_estimate_binary_values() -> None:
    m = estimate_binary(np.array([True, False]), np.array([0.9, 0.2]))
    assert m["accuracy"] == pytest.approx((0.9 + 0.8) / 2)
    assert m["precision"] == pytest.approx(0.9)
    assert m["recall"] == pytest.approx(0.9 / 1.1)


def test_regression_metrics() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    pred = y + rng.normal(0, 0.1, 200)
    df = pd.DataFrame({"request_id": range(200), "out.label": pred, "label": y})
    [w] = performance_by_window(df)
    assert w.task == "regression"
    assert w.metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert w.metrics["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_labels_store_latest_wins(tmp_path: Path) -> None:
    f = tmp_path / "labels.parquet"
    pd.DataFrame({"rid": ["a", "b"], "outcome": [1, 0]}).to_parquet(f)
    add_labels(tmp_path, "m", f, id_column="rid")
    add_labels(tmp_path, "m", pd.DataFrame({"rid": ["b"], "y": [True]}), id_column="rid")
    lab = read_labels(tmp_path, "m").set_index("request_id")["label"].to_dict()
    assert lab == {"a": "1", "b": "1"}


@pytest.mark.parametrize(
    ("frame", "kw", "match"),
    [
        (pd.DataFrame({"x": [1]}), {}, "no id column"),
        (pd.DataFrame({"request_id": [1], "a": [1], "b": [2]}), {}, "Say which column"),
        (pd.DataFrame({"request_id": [1], "a": [1]}), {"label_column": "zz"}, "no column 'zz'"),
    ],
)
def test_bad_label_files(tmp_path: Path, frame: pd.DataFrame, kw: dict[str, str], match: str) -> None:
    with pytest.raises(DataError, match=match):
        add_labels(tmp_path, "m", frame, **kw)


def test_log_without_predictions_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=r"out\.label"):
        performance_by_window(pd.DataFrame({"request_id": [1]}))
