"""A gate on rows the model was trained on proves nothing: evaluation data that is mostly training rows is
refused, and the number of training rows in it is recorded with the result."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from bastion.demo.data import ADULT_TARGET
from bastion.errors import DataError
from bastion.gates import run_gate

PERF: dict[str, Any] = {"version": 1, "name": "perf", "positive_label": 1,
                        "checks": {"performance": {"thresholds": {"accuracy": 0.5}}}}


def test_training_rows_as_the_holdout_are_refused(gated: Any, adult_train: pd.DataFrame) -> None:
    p, ref, _ = gated
    with pytest.raises(DataError, match="training data"):
        run_gate(p, ref, PERF, adult_train.head(300), ADULT_TARGET, sign=False)
    # a different storage type (category, float) does not disguise them
    disguised = adult_train.head(300).astype({"sex": "category", "age": "float64"})
    with pytest.raises(DataError, match="training data"):
        run_gate(p, ref, PERF, disguised, ADULT_TARGET, sign=False)


def test_training_rows_mixed_into_the_holdout_are_counted_and_a_majority_refused(
    gated: Any, adult_train: pd.DataFrame, adult_test: pd.DataFrame
) -> None:
    p, ref, _ = gated
    clean = run_gate(p, ref, PERF, adult_test.head(400), ADULT_TARGET, sign=False)
    by_chance = clean.datasets["evaluation"].get("rows_seen_in_training", 0)  # identical records occur
    mixed = pd.concat([adult_train.head(100), adult_test.head(400)], ignore_index=True)
    res = run_gate(p, ref, PERF, mixed, ADULT_TARGET, sign=False)
    assert res.datasets["evaluation"]["rows_seen_in_training"] >= 100 + by_chance
    with pytest.raises(DataError, match="training data"):
        run_gate(p, ref, PERF, pd.concat([adult_train.head(500), adult_test.head(400)]), ADULT_TARGET, sign=False)
