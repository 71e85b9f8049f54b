"""Drift statistics equal scipy's to 1e-9 (KS statistic and p-value, Wasserstein, chi-square, JS)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from bastion.monitor.drift.categorical import categorical_statistics, chi_square, frequency_table, js_distance
from bastion.monitor.drift.interface import TestResult
from bastion.monitor.drift.multiple import adjust_p_values, benjamini_hochberg, bonferroni
from bastion.monitor.drift.numeric import KSTest, NumericPSITest, WassersteinTest, numeric_statistics, psi


@pytest.mark.parametrize(
    ("n1", "n2", "shift", "rounding"),
    [
        (1, 1, 0.0, None),
        (1, 5, 1.0, None),
        (5, 7, 0.3, None),
        (50, 50, 0.0, None),  # exact, equal sizes
        (300, 1000, 0.1, 1),  # exact, heavy ties
        (2000, 3000, 0.05, None),
        (10_000, 10_000, 0.02, None),  # largest exact size
        (10_001, 9_000, 0.02, None),  # first asymptotic size
        (50_000, 20_000, 0.0, 2),  # asymptotic with ties
        (100_000, 100_000, 0.01, None),
    ],
)
def test_ks_and_wasserstein_equal_scipy(n1: int, n2: int, shift: float, rounding: int | None) -> None:
    rng = np.random.default_rng(n1 + n2)
    x = rng.normal(size=n1)
    y = rng.normal(shift, 1.0, size=n2)
    if rounding is not None:
        x, y = np.round(x, rounding), np.round(y, rounding)
    s = numeric_statistics(x, y)
    ref = stats.ks_2samp(x, y)  # method='auto', as scipy users call it
    assert s.ks_statistic == pytest.approx(ref.statistic, abs=1e-9)
    assert s.ks_p_value == pytest.approx(ref.pvalue, abs=1e-9)
    assert s.wasserstein == pytest.approx(stats.wasserstein_distance(x, y), abs=1e-9, rel=1e-9)
    assert s.wasserstein_norm == pytest.approx(s.wasserstein / np.std(x), rel=1e-12) if np.std(x) > 0 else True


@pytest.mark.parametrize("dist", ["exponential", "integers", "constant_vs_spread"])
def test_statistics_on_unusual_distributions(dist: str) -> None:
    rng = np.random.default_rng(7)
    if dist == "exponential":
        x, y = rng.exponential(size=3000), rng.exponential(1.2, size=4000)
    elif dist == "integers":
        x, y = rng.integers(0, 5, 20_000).astype(float), rng.integers(0, 6, 15_000).astype(float)
    else:
        x, y = np.full(100, 3.0), rng.normal(3, 1, 100)
    s = numeric_statistics(x, y)
    ref = stats.ks_2samp(x, y)
    assert s.ks_statistic == pytest.approx(ref.statistic, abs=1e-9)
    assert s.ks_p_value == pytest.approx(ref.pvalue, abs=1e-9)
    assert s.wasserstein == pytest.approx(stats.wasserstein_distance(x, y), abs=1e-9)
    assert np.isfinite(s.wasserstein_norm) and np.isfinite(s.psi)


def test_psi_known_value_and_decile_bins() -> None:
    r = np.array([50.0, 50.0])
    c = np.array([25.0, 75.0])
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi(r, c) == pytest.approx(expected, abs=1e-12)
    rng = np.random.default_rng(0)
    x = rng.normal(size=100_000)
    assert numeric_statistics(x, rng.normal(size=100_000)).psi < 0.01
    assert numeric_statistics(x, rng.normal(1.0, 1, size=100_000)).psi > 0.2


def test_drift_test_classes_share_the_one_pass() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=500), rng.normal(0.5, 1, size=400)
    ks = KSTest().compute(x, y)
    assert ks.p_value == pytest.approx(stats.ks_2samp(x, y).pvalue, abs=1e-9)
    assert ks.exceeds(0.05)
    w = WassersteinTest().compute(x, y)
    assert w.p_value is None and w.exceeds(0.1)
    assert NumericPSITest().compute(x, y).statistic > 0


def test_numeric_statistics_refuses_empty_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        numeric_statistics(np.array([]), np.array([1.0]))


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ({"a": 100, "b": 50, "c": 3}, {"a": 80, "b": 70, "d": 5}),
        ({"a": 10, "b": 10}, {"a": 12, "b": 8}),  # dof 1: compared without Yates correction
        ({"x": 1000, "y": 1, "z": 400}, {"x": 990, "y": 0, "z": 420}),
    ],
)
def test_chi_square_and_js_equal_scipy(ref: dict[str, int], cur: dict[str, int]) -> None:
    s = categorical_statistics(ref, cur)
    cats = sorted(set(ref) | set(cur))
    r = np.array([ref.get(c, 0) for c in cats], float)
    c = np.array([cur.get(k, 0) for k in cats], float)
    expected = stats.chi2_contingency(np.vstack([r, c]), correction=False)
    assert s.chi2 == pytest.approx(expected.statistic, abs=1e-9, rel=1e-12)
    assert s.chi2_p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert s.dof == expected.dof
    assert s.js == pytest.approx(jensenshannon(r / r.sum(), c / c.sum(), base=2), abs=1e-9)
    assert set(s.new_categories) == set(cur) - set(ref)
    assert set(s.unseen_categories) == {k for k in ref if cur.get(k, 0) == 0}


def test_chi_square_single_category_is_no_evidence() -> None:
    assert chi_square(np.array([5.0]), np.array([7.0])) == (0.0, 1.0, 0)
    assert js_distance(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0


def test_frequency_table_ignores_missing_and_stringifies() -> None:
    assert frequency_table(np.array(["a", None, "a", "b"], dtype=object)) == {"a": 2, "b": 1}
    assert frequency_table(np.array([True, False, True])) == {"true": 2, "false": 1}


def test_benjamini_hochberg_matches_r_p_adjust() -> None:
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "BH") -> all 0.05
    assert benjamini_hochberg(np.array([0.01, 0.02, 0.03, 0.04, 0.05])) == pytest.approx([0.05] * 5)
    # R: p.adjust(c(0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205), "BH")
    got = benjamini_hochberg(np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]))
    assert got == pytest.approx([0.008, 0.032, 0.0672, 0.0672, 0.0672, 0.08, 0.08457143, 0.205], abs=1e-7)
    assert bonferroni(np.array([0.01, 0.5])) == pytest.approx([0.02, 1.0])
    assert adjust_p_values([0.2], "none") == pytest.approx([0.2])
    assert adjust_p_values([], "bh").size == 0


@pytest.mark.parametrize(
    ("result", "threshold", "drift"),
    [
        (TestResult("ks", 0.3, 0.01, "p_value"), 0.05, True),
        (TestResult("ks", 0.3, 0.2, "p_value"), 0.05, False),
        (TestResult("wasserstein", 0.11, None, "effect"), 0.1, True),
        (TestResult("wasserstein", 0.1, None, "effect"), 0.1, False),
    ],
)
def test_exceeds(result: TestResult, threshold: float, drift: bool) -> None:
    assert result.exceeds(threshold) is drift


import warnings  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_values = st.lists(st.integers(-20, 20).map(lambda v: v / 4), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(_values, _values)
def test_property_equal_scipy_on_small_tied_samples(x: list[float], y: list[float]) -> None:
    a, b = np.array(x), np.array(y)
    s = numeric_statistics(a, b)
    with warnings.catch_warnings():
        # scipy warns when its exact method falls back to the asymptotic one; Bastion follows silently.
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = stats.ks_2samp(a, b)
    assert s.ks_statistic == pytest.approx(ref.statistic, abs=1e-9)
    assert s.ks_p_value == pytest.approx(ref.pvalue, abs=1e-9)
    assert s.wasserstein == pytest.approx(stats.wasserstein_distance(a, b), abs=1e-9)


@pytest.mark.parametrize(("n", "z"), [(141, 1.6), (5_000, 1.5), (20_000, 2.0), (150_000, 3.0), (150_000, 12.0)])
def test_vectorised_smirnov_equals_scipy(n: int, z: float) -> None:
    from scipy.special import smirnov

    from bastion.monitor.drift.numeric import smirnov_sf

    d = z / np.sqrt(n)
    assert smirnov_sf(n, d) == pytest.approx(smirnov(n, d), abs=1e-12, rel=1e-9)


@pytest.mark.parametrize("z", [1.49, 2.0, 4.0, 19.0])
def test_ks_p_value_in_scipys_slow_regime_equals_scipy(z: float) -> None:
    # n*D^2 in [2.2, 370): where scipy's kstwo.sf runs its O(n) smirnov loop; ours is vectorised.
    from scipy.stats import distributions

    from bastion.monitor.drift.numeric import _smirnov_regime, ks_p_value

    n1, n2 = 60_000, 40_000
    en = round(n1 * n2 / (n1 + n2))
    d = z / np.sqrt(en)
    assert _smirnov_regime(en, d) == (2.2 <= z * z < 370)
    assert ks_p_value(d, n1, n2)[1] == pytest.approx(float(distributions.kstwo.sf(d, en)), abs=1e-9)


@pytest.mark.parametrize("block", [1, 2, 7, 64])
def test_blocked_merge_equals_scipy_with_ties_across_blocks(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    import bastion.monitor.drift.numeric as numeric

    monkeypatch.setattr(numeric, "MERGE_BLOCK", block)
    rng = np.random.default_rng(block)
    x = np.round(rng.normal(size=300), 0)  # a handful of values, each tie group spanning many blocks
    y = np.round(rng.normal(0.3, 1.2, size=257), 0)
    s = numeric_statistics(x, y)
    assert s.ks_statistic == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)
    assert s.wasserstein == pytest.approx(stats.wasserstein_distance(x, y), abs=1e-12)
    z = np.full(50, 2.0)
    assert numeric_statistics(z, z).ks_statistic == 0.0 and numeric_statistics(z, z).wasserstein == 0.0
