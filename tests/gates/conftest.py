"""Shared gate fixtures: Adult samples, a fitted baseline, and one project with a logged model per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bastion.demo.data import ADULT_CATEGORICAL, ADULT_FEATURES, ADULT_NUMERIC, ADULT_TARGET, load_adult

POLICY: dict[str, Any] = {
    "version": 1,
    "name": "test",
    "positive_label": 1,
    "sensitive_attributes": ["sex", "race"],
    "intersections": [["sex", "race"]],
    "min_group_size": 30,
    "checks": {
        "performance": {"thresholds": {"accuracy": 0.75}},
        "fairness": {"thresholds": {"demographic_parity_difference": 0.15}},
        "diversity": {"min_share": 0.001},
        "robustness": {"sample_size": 3, "query_budget": 150, "stability_sample_size": 300,
                       "max_attack_success_rate": 1.0},
        "privacy": {"sample_size": 400, "max_auc": 0.7},
        "supply_chain": {"require_clean_scan": False},
    },
    "aliases": {"production": {"requires": ["gate"]}},
}


def baseline(C: float = 1.0) -> Pipeline:
    pre = ColumnTransformer([("num", StandardScaler(), ADULT_NUMERIC),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ADULT_CATEGORICAL)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=C, max_iter=300))])


@pytest.fixture(scope="session")
def adult_train() -> pd.DataFrame:
    return load_adult("train").sample(6000, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="session")
def adult_test_full() -> pd.DataFrame:
    return load_adult("test")


@pytest.fixture(scope="session")
def adult_test(adult_test_full: pd.DataFrame) -> pd.DataFrame:
    return adult_test_full.sample(3000, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="session")
def lr_model(adult_train: pd.DataFrame) -> Pipeline:
    return baseline().fit(adult_train[ADULT_FEATURES], adult_train[ADULT_TARGET])


@pytest.fixture(scope="session")
def gated(tmp_path_factory: pytest.TempPathFactory, adult_train: pd.DataFrame, lr_model: Pipeline) -> Iterator[Any]:
    """(project, model ref, dataset ref): the LR baseline logged with its training dataset.

    Shared by the whole session (logging a model costs seconds); tests only add documents to it.
    """
    from bastion.project import init_project

    root: Path = tmp_path_factory.mktemp("gates") / "proj"
    p = init_project(root)
    dv = p.register_dataset(adult_train, name="adult-train")
    mv = p.log_model(lr_model, name="income", datasets=[dv.ref], description="Predicts income > 50K.")
    yield p, mv.ref, dv.ref
    p.close()
