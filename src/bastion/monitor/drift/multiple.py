"""Multiple-testing control over the per-column p-values of one drift report:
Benjamini-Hochberg (false discovery rate) or Bonferroni (family-wise error).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["Correction", "adjust_p_values", "benjamini_hochberg", "bonferroni"]

Correction = Literal["bh", "bonferroni", "none"]


def bonferroni(p: np.ndarray) -> np.ndarray:
    """Bonferroni-adjusted p-values: ``min(1, m * p)``."""
    p = np.asarray(p, dtype=np.float64)
    out: np.ndarray = np.minimum(p * p.size, 1.0)
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (as ``statsmodels`` ``fdr_bh`` and R ``p.adjust``)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return out


def adjust_p_values(p: list[float] | np.ndarray, method: Correction) -> np.ndarray:
    """Adjust a family of p-values with ``method`` ("bh", "bonferroni" or "none")."""
    arr = np.asarray(p, dtype=np.float64)
    if method == "bh":
        return benjamini_hochberg(arr)
    if method == "bonferroni":
        return bonferroni(arr)
    return arr.copy()
