"""compute_drift: planted drifts found, clean data quiet (false-alarm rate), edge cases never crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.errors import ConfigError, DataError
from bastion.monitor.config import ColumnDriftConfig, DriftConfig
from bastion.monitor.drift.run import compute_drift


def _frame(n: int, seed: int, *, mean_shift: float = 0.0, scale: float = 1.0, new_cat: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cat = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    if new_cat:
        cat[: int(n * new_cat)] = "z"
    return pd.DataFrame(
        {
            "shift": rng.normal(mean_shift, 1.0, n),
            "spread": rng.normal(0.0, scale, n),
            "clean": rng.normal(5.0, 2.0, n),
            "count": rng.integers(0, 5, n),
            "cat": cat,
            "flag": rng.random(n) < 0.3,
        }
    )


def test_planted_drifts_found_and_clean_columns_quiet() -> None:
    ref = _frame(20_000, 1)
    cur = _frame(20_000, 2, mean_shift=0.5, scale=2.0, new_cat=0.1)
    rep = compute_drift(ref, cur)
    assert rep.verdict == "effect"
    assert set(rep.drifted_features) == {"shift", "spread", "cat"}
    assert rep.dataset_drift
    cat = rep.feature("cat")
    assert cat.new_categories == ("z",) and cat.kind == "categorical"
    assert rep.feature("count").kind == "categorical"  # few distinct integers
    assert rep.feature("flag").kind == "categorical"
    for f in rep.features:  # both the test and the effect size are reported
        assert f.p_value is not None and f.p_value_adjusted is not None
        assert ("wasserstein" in f.tests) if f.kind == "numeric" else ("js" in f.tests)
        assert "psi" in f.tests


def test_identical_distributions_do_not_alarm_effect_mode() -> None:
    ref = _frame(50_000, 10)
    alarms = sum(compute_drift(ref, _frame(20_000, 100 + s)).dataset_drift for s in range(5))
    assert alarms == 0


def test_false_alarm_rate_with_multiple_testing_small_windows() -> None:
    # 60 seeded runs of 10 undrifted columns, p-value verdicts with BH at alpha=0.05:
    # the family-wise false-alarm rate stays near alpha, far below the 40% an uncorrected test gives.
    rng = np.random.default_rng(0)
    cfg = DriftConfig(verdict="p_value")
    raw = DriftConfig(verdict="p_value", multiple_testing="none")
    alarms = raw_alarms = 0
    runs = 60
    for _ in range(runs):
        ref = pd.DataFrame({f"x{i}": rng.normal(size=300) for i in range(10)})
        cur = pd.DataFrame({f"x{i}": rng.normal(size=200) for i in range(10)})
        alarms += compute_drift(ref, cur, config=cfg).dataset_drift
        raw_alarms += compute_drift(ref, cur, config=raw).dataset_drift
    assert alarms / runs <= 0.12
    assert raw_alarms > alarms


def test_small_windows_use_p_values_and_still_catch_big_shifts() -> None:
    ref = _frame(5000, 3)
    cur = _frame(300, 4, mean_shift=1.0)
    rep = compute_drift(ref, cur)
    assert rep.verdict == "p_value"
    assert rep.feature("shift").drifted and rep.feature("shift").verdict_test == "ks"
    assert not rep.feature("clean").drifted


@pytest.mark.parametrize("n", [1, 2, 5])
def test_tiny_windows(n: int) -> None:
    rep = compute_drift(_frame(1000, 5), _frame(n, 6))
    assert rep.n_current == n
    assert all(f.n_current == n or f.kind == "categorical" for f in rep.features)


def test_empty_window_has_no_verdict() -> None:
    ref = _frame(1000, 5)
    rep = compute_drift(ref, ref.iloc[0:0])
    assert rep.n_current == 0 and not rep.dataset_drift
    assert "empty" in rep.note
    assert all(f.tests == {} and not f.drifted for f in rep.features)


def test_all_null_columns_reported_not_crashing() -> None:
    ref = _frame(2000, 7)
    cur = _frame(2000, 8)
    cur["clean"] = np.nan
    cur["cat"] = None
    ref["flag"] = None  # all-null reference column
    rep = compute_drift(ref, cur)
    clean = rep.feature("clean")
    assert clean.drifted and clean.missing_current == 1.0 and "missing rate" in clean.reasons[0]
    assert clean.note == "no non-missing current values"
    assert rep.feature("cat").drifted
    assert rep.feature("flag").note == "no non-missing reference values"


def test_missing_rate_change_is_a_drift_reason() -> None:
    ref = _frame(10_000, 1)
    cur = _frame(10_000, 2)
    cur.loc[: 2999, "clean"] = np.nan
    f = compute_drift(ref, cur).feature("clean")
    assert f.drifted and f.missing_current == pytest.approx(0.3)


def test_unseen_and_new_categories() -> None:
    ref = _frame(10_000, 1)
    cur = _frame(10_000, 2)
    cur["cat"] = cur["cat"].replace({"c": "b"})
    f = compute_drift(ref, cur).feature("cat")
    assert f.unseen_categories == ("c",) and f.new_categories == ()


def test_schema_changes_reported() -> None:
    ref = _frame(3000, 1)
    cur = _frame(3000, 2).drop(columns=["clean"]).assign(extra=1.0)
    cur["shift"] = cur["shift"].astype(str) + "x"  # numeric became text
    rep = compute_drift(ref, cur)
    assert rep.missing_in_current == ("clean",)
    assert rep.new_in_current == ("extra",)
    shift = rep.feature("shift")
    assert shift.drifted and "type changed" in shift.reasons[0]
    assert rep.dataset_drift


def test_unknown_column_and_bad_input_are_clear_errors() -> None:
    ref = _frame(100, 1)
    with pytest.raises(DataError, match="not in the reference"):
        compute_drift(ref, ref, columns=["nope"])
    with pytest.raises(DataError, match="Expected a pandas DataFrame"):
        compute_drift(ref, 42)
    with pytest.raises(DataError, match="does not exist"):
        compute_drift(ref, "/nonexistent/file.parquet")


def test_per_column_overrides() -> None:
    ref = _frame(20_000, 1)
    cur = _frame(20_000, 2, mean_shift=0.15)
    cfg = DriftConfig(
        columns={
            "shift": ColumnDriftConfig(test="psi", threshold=0.5),
            "clean": ColumnDriftConfig(ignore=True),
            "spread": ColumnDriftConfig(threshold=0.0001),
        }
    )
    rep = compute_drift(ref, cur, config=cfg)
    assert rep.feature("shift").verdict_test == "psi" and not rep.feature("shift").drifted
    assert "clean" in rep.skipped
    assert rep.feature("spread").drifted  # absurdly low threshold
    with pytest.raises(ConfigError, match="numeric"):
        compute_drift(ref, cur, config=DriftConfig(columns={"shift": ColumnDriftConfig(test="js")}))


def test_prediction_columns_are_prediction_drift() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=5000), "out.proba": rng.beta(2, 5, 5000)})
    cur = pd.DataFrame({"x": rng.normal(size=5000), "out.proba": rng.beta(5, 2, 5000)})
    rep = compute_drift(ref, cur)
    assert rep.prediction_drift and not rep.dataset_drift
    assert rep.feature("out.proba").prediction


def test_parquet_sources_equal_in_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref = _frame(5000, 1)
    cur = _frame(4000, 2, mean_shift=0.3)
    half = len(cur) // 2
    pq.write_table(pa.Table.from_pandas(ref, preserve_index=False), tmp_path / "ref.parquet")
    pq.write_table(pa.Table.from_pandas(cur.iloc[:half], preserve_index=False), tmp_path / "cur-1.parquet")
    pq.write_table(pa.Table.from_pandas(cur.iloc[half:], preserve_index=False), tmp_path / "cur-2.parquet")
    a = compute_drift(ref, cur).to_dict()
    b = compute_drift(str(tmp_path / "ref.parquet"), str(tmp_path / "cur-*.parquet")).to_dict()
    a.pop("created")
    b.pop("created")
    assert a == b


def test_dask_equals_in_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref = _frame(4000, 1)
    cur = _frame(3000, 2, mean_shift=0.4, new_cat=0.05)
    pq.write_table(pa.Table.from_pandas(cur, preserve_index=False), tmp_path / "cur.parquet")
    local = compute_drift(ref, str(tmp_path / "cur.parquet")).to_dict()
    seen: list[tuple[int, int]] = []
    dask = compute_drift(ref, str(tmp_path / "cur.parquet"), engine="dask",
                         progress=lambda d, t: seen.append((d, t))).to_dict()
    local.pop("created")
    dask.pop("created")
    assert dask == local
    assert seen[-1] == (6, 6)
