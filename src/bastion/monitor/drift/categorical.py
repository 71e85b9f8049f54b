"""Categorical drift statistics from two frequency tables: chi-square test of homogeneity,
Jensen-Shannon distance (base 2), PSI, new/unseen categories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import distributions

from bastion.monitor.drift.interface import DriftTest, TestResult
from bastion.monitor.drift.numeric import psi

__all__ = [
    "CategoricalSummary",
    "ChiSquareTest",
    "JensenShannonTest",
    "categorical_statistics",
    "chi_square",
    "frequency_table",
    "js_distance",
]

_HIST_TOP = 20


def frequency_table(values: Any) -> dict[str, int]:
    """Counts of each non-missing value, keyed by its string form."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(np.asarray(values))
    if pa.types.is_dictionary(arr.type):
        return _dictionary_counts(arr)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], type=arr.type)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    vc = pc.value_counts(arr)
    out: dict[str, int] = {}
    for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
        if v is not None:
            out[v] = out.get(v, 0) + int(c)
    return out


def _dictionary_counts(arr: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    """Counts of a dictionary-encoded column: a bincount of the indices per chunk."""
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    out: dict[str, int] = {}
    for ch in chunks:
        if len(ch) == 0:
            continue
        idx = ch.indices
        if idx.null_count:
            idx = pc.drop_null(idx)
        counts = np.bincount(idx.to_numpy(zero_copy_only=False), minlength=len(ch.dictionary))
        dictionary = ch.dictionary
        if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
            dictionary = pc.cast(dictionary, pa.string())
        for v, c in zip(dictionary.to_pylist(), counts.tolist(), strict=True):
            if c and v is not None:
                out[v] = out.get(v, 0) + int(c)
    return out


def chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """Pearson chi-square test of homogeneity on the 2 x k table (no continuity correction).

    Equals ``scipy.stats.chi2_contingency([ref, cur], correction=False)`` on the categories
    that occur on either side. Returns ``(statistic, p_value, dof)``.
    """
    table = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    k = table.shape[1]
    if k < 2:
        return 0.0, 1.0, 0
    total = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = k - 1
    return stat, float(distributions.chi2.sf(stat, dof)), dof


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (``scipy.spatial.distance.jensenshannon(p, q, base=2)``)."""
    p = p_counts / p_counts.sum()
    q = q_counts / q_counts.sum()
    m = (p + q) / 2.0

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log(x[nz] / m[nz])))

    js = (kl(p) + kl(q)) / 2.0 / np.log(2.0)
    return float(np.sqrt(max(js, 0.0)))


@dataclass(frozen=True)
class CategoricalSummary:
    """All categorical statistics of one column."""

    chi2: float
    chi2_p_value: float
    dof: int
    js: float
    psi: float
    new_categories: tuple[str, ...]
    unseen_categories: tuple[str, ...]
    new_share: float
    histogram: dict[str, Any]

    def results(self) -> dict[str, TestResult]:
        return {
            "chi2": TestResult("chi2", self.chi2, self.chi2_p_value, "p_value", {"dof": self.dof}),
            "js": TestResult("js", self.js, None, "effect"),
            "psi": TestResult("psi", self.psi, None, "effect"),
        }


def categorical_statistics(ref: dict[str, int], cur: dict[str, int]) -> CategoricalSummary:
    """Statistics of two frequency tables (both with at least one count)."""
    cats = sorted(set(ref) | set(cur))
    r = np.array([ref.get(c, 0) for c in cats], dtype=np.float64)
    c = np.array([cur.get(x, 0) for x in cats], dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        raise ValueError("categorical_statistics needs two non-empty frequency tables")
    stat, p, dof = chi_square(r, c)
    new = tuple(x for x in cats if ref.get(x, 0) == 0)
    unseen = tuple(x for x in cats if cur.get(x, 0) == 0)
    top = np.argsort(-(r / r.sum() + c / c.sum()), kind="stable")[:_HIST_TOP]
    hist = {
        "type": "categorical",
        "categories": [cats[i] for i in top],
        "reference": [float(r[i] / r.sum()) for i in top],
        "current": [float(c[i] / c.sum()) for i in top],
    }
    return CategoricalSummary(
        chi2=stat,
        chi2_p_value=p,
        dof=dof,
        js=js_distance(r, c),
        psi=psi(r, c),
        new_categories=new,
        unseen_categories=unseen,
        new_share=float(sum(cur.get(x, 0) for x in new) / c.sum()),
        histogram=hist,
    )


class ChiSquareTest(DriftTest):
    """Chi-square test of homogeneity between reference and current category counts."""

    name: ClassVar[str] = "chi2"
    kind = "categorical"
    basis = "p_value"
    default_threshold: ClassVar[float] = 0.05

    def compute(self, reference: np.ndarray, current: np.ndarray) -> TestResult:
        return categorical_statistics(frequency_table(reference), frequency_table(current)).results()["chi2"]


class JensenShannonTest(DriftTest):
    """Jensen-Shannon distance (base 2) between the category distributions."""

    name: ClassVar[str] = "js"
    kind = "categorical"
    basis = "effect"
    default_threshold: ClassVar[float] = 0.1

    def compute(self, reference: np.ndarray, current: np.ndarray) -> TestResult:
        return categorical_statistics(frequency_table(reference), frequency_table(current)).results()["js"]
