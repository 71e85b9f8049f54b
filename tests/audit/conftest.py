from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression


@pytest.fixture(scope="session")
def toy_df() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame({"age": rng.integers(18, 90, n), "income": rng.normal(50_000, 10_000, n),
                         "label": rng.integers(0, 2, n)})


@pytest.fixture(scope="session")
def toy_model(toy_df: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=200).fit(toy_df[["age", "income"]], toy_df["label"])
