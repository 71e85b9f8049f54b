"""Helpers the adversarial checks share: numeric feature space, standardization, model probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def numeric_columns(features: pd.DataFrame) -> list[str]:
    """Columns an attacker can nudge continuously (numbers, not booleans)."""
    return [
        c for c in features.columns
        if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c])
    ]


def scale(reference: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per column (std 1 for constant columns), missing values ignored."""
    arr = reference[cols].to_numpy(dtype=np.float64, na_value=np.nan)
    mean = np.nan_to_num(np.nanmean(arr, axis=0))
    std = np.nan_to_num(np.nanstd(arr, axis=0))
    std[std == 0] = 1.0
    return mean, std


def proba(model: Any, frame: pd.DataFrame, positive_index: int) -> np.ndarray:
    """``(n, 2)`` probabilities ordered [negative, positive] (hard predictions when no predict_proba)."""
    if hasattr(model, "predict_proba"):
        p = np.asarray(model.predict_proba(frame), dtype=np.float64)
        if p.ndim == 2 and p.shape[1] == 2:
            pos = p[:, positive_index]
            return np.column_stack([1.0 - pos, pos])
    from bastion.gates.run import to_binary

    hard = to_binary(model.predict(frame), model)
    return np.column_stack([1.0 - hard, hard]).astype(np.float64)


def positive_index(model: Any, positive_label: Any) -> int:
    classes = list(getattr(model, "classes_", [0, 1]))
    for i, c in enumerate(classes):
        if c == positive_label or str(c) == str(positive_label):
            return i
    return len(classes) - 1


def with_numeric(template: pd.DataFrame, cols: list[str], values: np.ndarray) -> pd.DataFrame:
    """``template`` rows (one per row of ``values``) with ``cols`` replaced by ``values``."""
    out = {c: template[c].to_numpy() for c in template.columns}
    for i, c in enumerate(cols):
        out[c] = values[:, i]
    return pd.DataFrame(out, columns=template.columns)
