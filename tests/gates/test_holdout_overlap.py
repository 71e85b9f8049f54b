"""A gate on rows the model was trained on proves nothing: such rows are left out of the evaluation
(counted in the result), and evaluation data made only of training rows is refused."""

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


def test_training_rows_mixed_into_the_holdout_are_left_out(
    gated: Any, adult_train: pd.DataFrame, adult_test: pd.DataFrame
) -> None:
    p, ref, _ = gated
    clean = run_gate(p, ref, PERF, adult_test.head(400), ADULT_TARGET, sign=False)
    assert "rows_seen_in_training" not in clean.datasets["evaluation"]
    mixed = pd.concat([adult_train.head(600), adult_test.head(400)], ignore_index=True)
    res = run_gate(p, ref, PERF, mixed, ADULT_TARGET, sign=False)
    ev = res.datasets["evaluation"]
    assert ev["rows_seen_in_training"] == 600 and ev["rows_evaluated"] == 400
    assert res.checks[0].measured == clean.checks[0].measured  # scored on the unseen rows only
