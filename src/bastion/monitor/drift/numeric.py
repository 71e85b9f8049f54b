"""Numeric drift statistics from one sort per column: two-sample KS (statistic and p-value),
Wasserstein-1 (raw and in units of the reference standard deviation) and PSI on reference-quantile bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.stats import distributions

from bastion.monitor.drift.interface import DriftTest, TestResult

try:  # the exact small-sample path scipy's ks_2samp itself uses (private, but stable since 1.5)
    from scipy.stats._stats_py import _attempt_exact_2kssamp as _scipy_exact
except ImportError:  # pragma: no cover - older/newer scipy without the helper
    _scipy_exact = None

__all__ = [
    "KS_MAX_EXACT_N",
    "PSI_EPSILON",
    "KSTest",
    "NumericPSITest",
    "NumericSummary",
    "WassersteinTest",
    "ks_p_value",
    "numeric_statistics",
    "psi",
]

KS_MAX_EXACT_N = 10_000  # scipy's MAX_AUTO_N: method='auto' is exact up to this size
PSI_EPSILON = 1e-4  # floor for empty bins so PSI stays finite (common practice)


def ks_p_value(d: float, n1: int, n2: int) -> tuple[float, float]:
    """Two-sided KS p-value as ``scipy.stats.ks_2samp(method='auto')`` computes it.

    Returns ``(statistic, p_value)``; in the exact regime scipy rounds the statistic to the
    lattice ``h / lcm(n1, n2)``, and so does this.
    """
    if max(n1, n2) <= KS_MAX_EXACT_N and _scipy_exact is not None:
        ok, d_exact, prob = _scipy_exact(n1, n2, math.gcd(n1, n2), d, "two-sided")
        if ok:
            return float(d_exact), float(np.clip(prob, 0.0, 1.0))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(d), float(np.clip(distributions.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two count vectors over the same bins."""
    r = ref_counts / max(ref_counts.sum(), 1)
    c = cur_counts / max(cur_counts.sum(), 1)
    r = np.maximum(r, epsilon)
    c = np.maximum(c, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


@dataclass(frozen=True)
class NumericSummary:
    """Everything computed from one sort of each side."""

    ks_statistic: float
    ks_p_value: float
    wasserstein: float
    wasserstein_norm: float
    psi: float
    reference_std: float
    reference_mean: float
    current_mean: float
    current_std: float
    histogram: dict[str, Any]

    def results(self) -> dict[str, TestResult]:
        return {
            "ks": TestResult("ks", self.ks_statistic, self.ks_p_value, "p_value"),
            "wasserstein": TestResult(
                "wasserstein",
                self.wasserstein_norm,
                None,
                "effect",
                {"raw": self.wasserstein, "reference_std": self.reference_std},
            ),
            "psi": TestResult("psi", self.psi, None, "effect"),
        }


def numeric_statistics(
    reference: np.ndarray, current: np.ndarray, *, psi_bins: int = 10, hist_bins: int = 30
) -> NumericSummary:
    """KS, Wasserstein-1 and PSI of two non-empty float arrays without missing values.

    Each side is sorted once; the two sorted runs are merged by a stable argsort (a linear merge
    of two runs), and the difference of the empirical CDFs along the merged order gives the KS
    statistic (its largest absolute value at the ends of tie groups) and the Wasserstein-1
    distance (its integral).
    """
    a = np.sort(np.asarray(reference, dtype=np.float64))
    b = np.sort(np.asarray(current, dtype=np.float64))
    n1, n2 = int(a.size), int(b.size)
    if n1 == 0 or n2 == 0:
        raise ValueError("numeric_statistics needs two non-empty samples")

    merged = np.concatenate([a, b])
    order = np.argsort(merged, kind="stable")  # timsort: a linear merge of the two sorted runs
    merged = merged[order]
    from_ref = order < n1
    del order
    # Running count of reference values along the merged order; the CDF difference only matters at the
    # last element of each group of equal values (and the Wasserstein gaps are zero inside a group).
    cnt_ref = np.cumsum(from_ref, dtype=np.int32 if n1 + n2 < 2**31 else np.int64)
    del from_ref
    ends = np.empty(merged.size, dtype=bool)
    np.not_equal(merged[:-1], merged[1:], out=ends[:-1])
    ends[-1] = True
    pos = np.flatnonzero(ends)
    del ends
    values = merged[pos]
    del merged
    # Integer numerator of F_ref - F_cur over n1*n2 (= cnt_ref * n2 - cnt_cur * n1), exact.
    num = cnt_ref[pos].astype(np.int64)
    del cnt_ref
    num *= n1 + n2
    pos += 1
    pos *= n1
    num -= pos
    del pos
    scale = float(n1) * float(n2)
    d = max(float(num.max()), float(-num.min()), 0.0) / scale
    np.abs(num, out=num)
    w = float(np.dot(num[:-1].astype(np.float64), np.diff(values))) / scale if values.size > 1 else 0.0
    del num, values

    d_reported, p = ks_p_value(d, n1, n2)

    ref_std = float(np.std(a))
    ref_mean = float(np.mean(a))
    denom = ref_std if ref_std > 0 else (abs(ref_mean) if ref_mean != 0 else 1.0)
    w_norm = w / denom

    # PSI on reference deciles: bin edges are order statistics of the sorted reference.
    qs = np.linspace(0, 1, psi_bins + 1)[1:-1]
    edges = np.unique(a[np.minimum((qs * n1).astype(np.int64), n1 - 1)])
    psi_value = psi(_bin_counts(a, edges), _bin_counts(b, edges))

    return NumericSummary(
        ks_statistic=d_reported,
        ks_p_value=p,
        wasserstein=w,
        wasserstein_norm=w_norm,
        psi=psi_value,
        reference_std=ref_std,
        reference_mean=ref_mean,
        current_mean=float(np.mean(b)),
        current_std=float(np.std(b)),
        histogram=_histogram(a, b, hist_bins),
    )


def _bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e1], (e1, e2], ..., (ek, inf) of an already sorted array."""
    cuts = np.searchsorted(sorted_values, edges, side="right")
    bounds = np.concatenate([[0], cuts, [sorted_values.size]])
    return np.diff(bounds).astype(np.float64)


def _histogram(a: np.ndarray, b: np.ndarray, bins: int) -> dict[str, Any]:
    """Shared-edge histogram (proportions) of both sorted sides, clipped to the 0.5-99.5% range."""

    def q(x: np.ndarray, p: float) -> float:
        return float(x[min(int(p * x.size), x.size - 1)])

    lo = min(q(a, 0.005), q(b, 0.005))
    hi = max(q(a, 0.995), q(b, 0.995))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    inner = edges[1:-1]
    ca = _bin_counts(a, inner)
    cb = _bin_counts(b, inner)
    return {
        "type": "numeric",
        "edges": [float(e) for e in edges],
        "reference": [float(x) for x in ca / a.size],
        "current": [float(x) for x in cb / b.size],
    }


class KSTest(DriftTest):
    """Two-sample Kolmogorov-Smirnov test (scipy's ``ks_2samp``, method='auto')."""

    name: ClassVar[str] = "ks"
    kind = "numeric"
    basis = "p_value"
    default_threshold: ClassVar[float] = 0.05

    def compute(self, reference: np.ndarray, current: np.ndarray) -> TestResult:
        return numeric_statistics(reference, current).results()["ks"]


class WassersteinTest(DriftTest):
    """Wasserstein-1 distance in units of the reference standard deviation."""

    name: ClassVar[str] = "wasserstein"
    kind = "numeric"
    basis = "effect"
    default_threshold: ClassVar[float] = 0.1

    def compute(self, reference: np.ndarray, current: np.ndarray) -> TestResult:
        return numeric_statistics(reference, current).results()["wasserstein"]


class NumericPSITest(DriftTest):
    """Population stability index on reference-decile bins."""

    name: ClassVar[str] = "psi"
    kind = "numeric"
    basis = "effect"
    default_threshold: ClassVar[float] = 0.2

    def compute(self, reference: np.ndarray, current: np.ndarray) -> TestResult:
        return numeric_statistics(reference, current).results()["psi"]
