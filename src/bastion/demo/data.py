"""The bundled UCI Adult data (CC BY 4.0; see data/README.md for the citation)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["ADULT_FEATURES", "ADULT_TARGET", "DATA_DIR", "load_adult"]

DATA_DIR = Path(__file__).parent / "data"
ADULT_TARGET = "income"
ADULT_NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
ADULT_CATEGORICAL = ["workclass", "marital_status", "occupation", "relationship", "race", "sex"]
ADULT_FEATURES = ADULT_NUMERIC + ADULT_CATEGORICAL


def load_adult(split: str = "train", *, rows: int | None = None) -> pd.DataFrame:
    """Adult rows with a 0/1 ``income`` label (1 = >50K); missing values as empty strings -> 'Unknown'."""
    if split not in {"train", "test"}:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    df = pd.read_csv(DATA_DIR / f"adult_{split}.csv.gz", nrows=rows)
    for col in ("workclass", "occupation", "native_country"):
        df[col] = df[col].fillna("Unknown")
    df[ADULT_TARGET] = (df[ADULT_TARGET].astype(str).str.strip() == ">50K").astype("int64")
    return df
