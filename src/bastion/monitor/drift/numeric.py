"""Numeric drift statistics from one sort per column: two-sample KS (statistic and p-value),
Wasserstein-1 (raw and in units of the reference standard deviation) and PSI on reference-quantile bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import special
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
    "smirnov_sf",
    "sorted_statistics",
]

KS_MAX_EXACT_N = 10_000  # scipy's MAX_AUTO_N: method='auto' is exact up to this size
PSI_EPSILON = 1e-4  # floor for empty bins so PSI stays finite (common practice)
MERGE_BLOCK = 1 << 17  # values merged at once when walking the two sorted sides (bounds the working memory)
# Above this magnitude statistics are computed on scaled values (squares and sums of 1e308 overflow).
_OVERFLOW_SAFE = 1e100
_SMIRNOV_MAX_SUM_N = 1_000_000  # above this scipy switches smirnov() to an asymptotic formula


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
    en = int(np.round(m * n / (m + n)))
    if _smirnov_regime(en, d):
        return float(d), float(np.clip(2.0 * smirnov_sf(en, d), 0.0, 1.0))
    return float(d), float(np.clip(distributions.kstwo.sf(d, en), 0.0, 1.0))


def _smirnov_regime(n: int, x: float) -> bool:
    """Where ``scipy.stats.kstwo.sf(x, n)`` is ``2 * scipy.special.smirnov(n, x)`` computed by an O(n)
    scalar loop (up to a second at n = 1e6): 2.2 <= n x^2 < 370, 1 < n x < n - 1, x < 0.5, 140 < n <= 1e6."""
    t = n * x
    return 140 < n <= _SMIRNOV_MAX_SUM_N and 0.0 < x < 0.5 and 1.0 < t < n - 1 and 2.2 <= t * x < 370.0


def smirnov_sf(n: int, d: float, *, block: int = 1 << 18) -> float:
    """One-sided KS survival ``P(D+_n > d)`` by the Birnbaum-Tingey sum, vectorised in blocks.

    The same sum ``scipy.special.smirnov`` evaluates term by term for ``n <= 1e6``; equal to it to
    about 1e-11 absolute here (tests), in a few tens of milliseconds instead of up to a second.
    """
    last = min(int(np.floor(n * (1.0 - d))), n - 1)
    log_n1 = math.log(n + 1.0)
    total = 0.0
    for start in range(0, last + 1, block):
        v = np.arange(start, min(last + 1, start + block), dtype=np.float64)
        p = d + v / n
        # log C(n, v) = -log(n + 1) - log B(n - v + 1, v + 1): betaln keeps it accurate for large n.
        with np.errstate(divide="ignore"):  # p == 1 at the last term: (1 - p)^(n - v) = 0
            lt = -log_n1 - special.betaln(n - v + 1.0, v + 1.0) + (v - 1.0) * np.log(p) + (n - v) * np.log1p(-p)
        total += float(np.sum(np.exp(lt)))
    return d * total


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

    Sorts a private copy of each side once and hands them to :func:`sorted_statistics`.
    """
    a = np.array(reference, dtype=np.float64)  # private copies: sorted in place below
    b = np.array(current, dtype=np.float64)
    a.sort()
    b.sort()
    return sorted_statistics(a, b, psi_bins=psi_bins, hist_bins=hist_bins)


def sorted_statistics(a: np.ndarray, b: np.ndarray, *, psi_bins: int = 10, hist_bins: int = 30) -> NumericSummary:
    """:func:`numeric_statistics` of two already sorted, non-empty float64 arrays (not modified).

    The two sorted sides are walked together in blocks of ``MERGE_BLOCK`` merged values: at the end
    of each group of equal values the integer difference of the empirical CDFs gives the KS statistic
    (its largest absolute value) and the Wasserstein-1 distance (its integral). Working memory beyond
    the two arrays is O(``MERGE_BLOCK``), whatever the number of rows.
    """
    n1, n2 = int(a.size), int(b.size)
    if n1 == 0 or n2 == 0:
        raise ValueError("numeric_statistics needs two non-empty samples")
    if not (math.isfinite(a[0]) and math.isfinite(a[-1]) and math.isfinite(b[0]) and math.isfinite(b[-1])):
        raise ValueError("numeric_statistics needs finite values (drop NaN and infinities first)")
    d_num, w_num = _merge_walk(a, b)
    scale = float(n1) * float(n2)
    d = d_num / scale
    w = w_num / scale

    d_reported, p = ks_p_value(d, n1, n2)

    ref_mean, ref_std = _mean_std(a)
    cur_mean, cur_std = _mean_std(b)
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
        current_mean=cur_mean,
        current_std=cur_std,
        histogram=_histogram(a, b, hist_bins),
    )


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (as ``np.mean``/``np.std``), temporaries one block at a time.

    Values beyond ``_OVERFLOW_SAFE`` in magnitude (whose squares or sums overflow float64) are
    handled by a power-of-two rescaling; a result beyond the float64 range is ``inf``.
    """
    mag = max(abs(float(x[0])), abs(float(x[-1]))) if x.size else 0.0  # x is sorted
    if mag > _OVERFLOW_SAFE:
        unit = math.ldexp(1.0, math.frexp(mag)[1] - 1)  # |x / unit| < 2, exact
        mean, std = _mean_std(x / unit)
        return _times(mean, unit), _times(std, unit)
    if x.size <= MERGE_BLOCK:
        return float(np.mean(x)), float(np.std(x))
    mean = float(np.mean(x))
    ss = 0.0
    for s in range(0, x.size, MERGE_BLOCK):
        dev = x[s : s + MERGE_BLOCK] - mean
        ss += float(np.square(dev, out=dev).sum())
    return mean, math.sqrt(ss / x.size)


def _times(v: float, unit: float) -> float:
    """``v * unit`` as a float, ``+-inf`` beyond the float64 range."""
    try:
        return v * unit
    except OverflowError:  # pragma: no cover - CPython float multiplication returns inf
        return math.copysign(math.inf, v)


def _corank(a: np.ndarray, b: np.ndarray, k: int) -> int:
    """How many of the first ``k`` values of the merge of sorted ``a`` and ``b`` come from ``a``."""
    lo, hi = max(0, k - b.size), min(k, a.size)
    while lo < hi:
        i = (lo + hi) // 2
        j = k - i
        if j > 0 and i < a.size and b[j - 1] >= a[i]:
            lo = i + 1
        else:
            hi = i
    return lo


def _merge_walk(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(KS numerator, Wasserstein numerator)`` of two sorted arrays; both statistics are these over ``n1 * n2``.

    At the last value of each group of equal values, ``num = cnt_a * n2 - cnt_b * n1`` is the exact
    integer numerator of ``F_a - F_b``; KS is its largest absolute value and Wasserstein-1 the sum of
    ``|num|`` times the gap to the next distinct value.
    """
    n1, n2 = int(a.size), int(b.size)
    total = n1 + n2
    d_num = 0
    w_half = 0.0
    i0 = j0 = k = 0
    idx = np.int32 if total < 2**31 else np.int64
    while k < total:
        k = min(k + MERGE_BLOCK, total)
        i1 = _corank(a, b, k)
        j1 = k - i1
        block = np.concatenate([a[i0:i1], b[j0:j1]])
        order = np.argsort(block, kind="stable")  # timsort: a linear merge of the two sorted runs
        block = block[order]
        cnt_a = np.cumsum(order < i1 - i0, dtype=idx)
        del order
        nxt = None if k == total else min(a[i1] if i1 < n1 else np.inf, b[j1] if j1 < n2 else np.inf)
        ends = np.empty(block.size, dtype=bool)
        np.not_equal(block[:-1], block[1:], out=ends[:-1])
        ends[-1] = nxt is None or bool(block[-1] != nxt)  # a tie group may continue in the next block
        pos = np.flatnonzero(ends)
        del ends
        if pos.size:
            values = block[pos]
            num = cnt_a[pos].astype(np.int64)
            num += i0
            num *= total  # cnt_a * n2 - cnt_b * n1 with cnt_b = (position + 1) - cnt_a
            pos += i0 + j0 + 1
            pos *= n1
            num -= pos
            d_num = max(d_num, int(num.max()), int(-num.min()))
            np.abs(num, out=num)
            # Half gaps: (x/2 - y/2) never overflows, even between -1e308 and 1e308, and is exactly
            # (x - y)/2 for normal floats. A product beyond the float range is inf (an infinite distance).
            half = values * 0.5
            gaps = np.empty(values.size)
            np.subtract(half[1:], half[:-1], out=gaps[:-1])
            gaps[-1] = 0.0 if nxt is None else float(nxt) * 0.5 - float(values[-1]) * 0.5
            del half
            # multiply + sum, not np.dot: BLAS would start its own threads under ours (oversubscription)
            with np.errstate(over="ignore"):
                w_half += float(np.multiply(num, gaps, out=gaps).sum())
        i0, j0 = i1, j1
    return float(d_num), w_half * 2.0


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
    if math.isfinite(hi - lo):
        edges = np.linspace(lo, hi, bins + 1)
    else:  # a span beyond the float64 range (values near +-1e308): interpolate in halves
        edges = np.linspace(lo / 2, hi / 2, bins + 1) * 2
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
