"""A registered, promoted model with logged traffic, for monitoring tests."""

from __future__ import annotations

from typing import Any

import pytest

from .monitor_helpers import make_data


@pytest.fixture
def served(project: Any) -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = make_data(3000, 0)
    ds = project.register_dataset(train, name="people")
    pipe = Pipeline([
        ("prep", ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                    ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex"])])),
        ("clf", LogisticRegression()),
    ]).fit(train[["age", "income", "sex"]], train["y"])
    v1 = project.log_model(pipe, name="risk", datasets=[ds.ref], params={"target": "y"})
    v2 = project.log_model(pipe, name="risk", datasets=[ds.ref], params={"target": "y"})
    project.promote(v1.ref, alias="production", force_reason="test")
    project.promote(v2.ref, alias="production", force_reason="test")
    return {"project": project, "model": pipe, "train": train, "v1": v1, "v2": v2}
