"""Bastion's vectorized fairness metrics equal fairlearn's (to 1e-9) on Adult and on edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from bastion.demo.data import ADULT_FEATURES, ADULT_TARGET
from bastion.errors import DataError
from bastion.gates.fairness import compute_fairness

DISPARITIES = [
    ("demographic_parity_difference", demographic_parity_difference, {}),
    ("demographic_parity_ratio", demographic_parity_ratio, {}),
    ("equalized_odds_difference", equalized_odds_difference, {}),
    ("equalized_odds_ratio", equalized_odds_ratio, {}),
    ("equalized_odds_difference_mean", equalized_odds_difference, {"agg": "mean"}),
    ("equalized_odds_ratio_mean", equalized_odds_ratio, {"agg": "mean"}),
    ("equal_opportunity_difference", equal_opportunity_difference, {}),
    ("equal_opportunity_ratio", equal_opportunity_ratio, {}),
]
FUNCTIONS_CHECKED = {"demographic_parity_difference", "equalized_odds_difference", "equalized_odds_ratio"}
RATES = {"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate,
         "fnr": false_negative_rate, "accuracy": accuracy_score, "count": count}


def _same(a: float, b: float | None) -> bool:
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None or math.isnan(a)
    return abs(a - b) <= 1e-9


def _from_frame(mf: MetricFrame, method: str) -> dict[str, float]:
    """fairlearn's disparity functions, computed from one MetricFrame the way they compute them."""
    d, r = mf.difference(method=method), mf.ratio(method=method)
    return {
        "demographic_parity_difference": d["selection_rate"],
        "demographic_parity_ratio": r["selection_rate"],
        "equal_opportunity_difference": d["tpr"],
        "equal_opportunity_ratio": r["tpr"],
        "equalized_odds_difference": max(d[["tpr", "fpr"]]),
        "equalized_odds_ratio": min(r[["tpr", "fpr"]]),
        "equalized_odds_difference_mean": d[["tpr", "fpr"]].mean(),
        "equalized_odds_ratio_mean": r[["tpr", "fpr"]].mean(),
    }


def assert_matches_fairlearn(y_true, y_pred, sf: pd.DataFrame, groupings, *, functions: bool = False) -> None:
    report = compute_fairness(y_true, y_pred, sf, groupings=groupings, min_group_size=30)
    for g in groupings:
        features = sf[list(g)] if len(g) > 1 else sf[g[0]]
        mf = MetricFrame(metrics=RATES, y_true=y_true, y_pred=y_pred, sensitive_features=features)
        ours = report.get(*g).table()
        theirs = mf.by_group.dropna(how="all")  # fairlearn lists empty intersection cells as NaN rows
        assert len(ours) == len(theirs)
        for m in RATES:
            np.testing.assert_allclose(ours[m].to_numpy(float), theirs[m].to_numpy(float), rtol=0, atol=1e-9)
        disp = report.get(*g).disparities
        for method, suffix in (("between_groups", ""), ("to_overall", "_to_overall")):
            expected = _from_frame(mf, method)
            if functions and method == "between_groups":  # the public functions themselves (slow: one frame each)
                expected = {name: float(fn(y_true, y_pred, sensitive_features=features, method=method, **kw))
                            for name, fn, kw in DISPARITIES if name in FUNCTIONS_CHECKED}
            for name, value in expected.items():
                assert _same(disp[name + suffix], float(value)), (g, name, method, disp[name + suffix], value)


def test_matches_fairlearn_on_adult_test_split(adult_test_full, lr_model) -> None:
    y_true = adult_test_full[ADULT_TARGET].to_numpy()
    y_pred = lr_model.predict(adult_test_full[ADULT_FEATURES])
    groupings = [("sex",), ("race",), ("sex", "race")]
    assert_matches_fairlearn(y_true, y_pred, adult_test_full[["sex", "race"]], groupings, functions=True)
    rep = compute_fairness(y_true, y_pred, adult_test_full[["sex", "race"]], groupings=groupings)
    assert rep.get("sex").disparities["demographic_parity_difference"] > 0.1  # Adult's known gap


@pytest.mark.parametrize("case", ["one_row_group", "no_positives_group", "no_negatives_group", "all_zero_pred"])
def test_edge_cases_match_fairlearn(case: str) -> None:
    rng = np.random.default_rng(3)
    n = 200
    sf = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "race": rng.choice(["a", "b", "c"], n)})
    y_true = rng.integers(0, 2, n)
    y_pred = rng.integers(0, 2, n)
    if case == "one_row_group":
        sf.loc[7, "race"] = "lonely"
    elif case == "no_positives_group":
        y_true[(sf["race"] == "c").to_numpy()] = 0
    elif case == "no_negatives_group":
        y_true[(sf["race"] == "b").to_numpy()] = 1
    else:
        y_pred[:] = 0
    assert_matches_fairlearn(y_true, y_pred, sf, [("sex",), ("race",), ("sex", "race")])


def test_group_without_positives_has_tpr_zero_and_small_groups_are_reported() -> None:
    sf = pd.DataFrame({"g": ["a"] * 5 + ["b"] * 3 + ["c"]})
    y_true = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1])
    y_pred = np.array([1, 0, 0, 1, 1, 1, 0, 0, 1])
    rep = compute_fairness(y_true, y_pred, sf, min_group_size=4).get("g")
    t = rep.table()
    assert t.loc["b", "tpr"] == 0.0 and t.loc["b", "count"] == 3
    assert rep.small_groups == (("b",), ("c",))
    assert list(t.index) == ["a", "b", "c"]  # small groups stay in the table
    assert t.loc["c", "small"] and not t.loc["a", "small"]


def test_missing_values_form_their_own_group() -> None:
    sf = pd.DataFrame({"g": ["a", None, "a", "b"]})
    rep = compute_fairness([1, 0, 1, 0], [1, 0, 0, 0], sf).get("g")
    assert ("(missing)",) in rep.groups


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [([0, 2], [0, 1], "0/1"), ([0, 1], [0], "rows"), (["a", "b"], [0, 1], "0/1")],
)
def test_bad_inputs_raise_data_error(y_true, y_pred, message) -> None:
    with pytest.raises(DataError, match=message):
        compute_fairness(y_true, y_pred, {"g": ["x", "y"]})


def test_excluding_small_groups_never_leaves_one_group_compared_with_itself() -> None:
    # One large group and a small one it treats badly: "without small groups" would be one group alone,
    # a disparity of 0 that passes any threshold. There is no such figure; the check uses every group.
    sf = pd.DataFrame({"g": ["a"] * 40 + ["b"] * 5})
    y_true = np.ones(45, dtype=int)
    y_pred = np.array([1] * 40 + [0] * 5)
    rep = compute_fairness(y_true, y_pred, sf, min_group_size=30).get("g")
    assert rep.small_groups == (("b",),)
    assert rep.disparities_large == {}
    assert rep.disparities["demographic_parity_difference"] == 1.0
    three = compute_fairness(np.ones(85, dtype=int), np.array([1] * 40 + [0] * 40 + [1] * 5),
                             pd.DataFrame({"g": ["a"] * 40 + ["c"] * 40 + ["b"] * 5}), min_group_size=30).get("g")
    assert three.disparities_large["demographic_parity_difference"] == 1.0  # two large groups: compared
