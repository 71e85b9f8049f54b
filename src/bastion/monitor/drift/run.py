"""``compute_drift``: per-column drift tests chosen by column type and sample size, multiple-testing
control, effect-size verdicts, and a dataset-level verdict, in-process (threads) or on Dask.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import fisher_exact

from bastion.errors import ConfigError, DataError
from bastion.monitor._source import TableSource
from bastion.monitor.config import ColumnDriftConfig, DriftConfig
from bastion.monitor.drift.categorical import categorical_statistics, frequency_table
from bastion.monitor.drift.interface import ColumnKind, FeatureDrift, TestResult, _jsonable_dict
from bastion.monitor.drift.multiple import adjust_p_values
from bastion.monitor.drift.numeric import sorted_statistics

__all__ = [
    "PREDICTION_PREFIX",
    "DriftReport",
    "column_drift",
    "compute_drift",
    "dataset_verdict",
    "finalize",
    "resolve_columns",
]

log = logging.getLogger("bastion.monitor")

PREDICTION_PREFIX = "out."
_SKIP_TYPES = (pa.types.is_timestamp, pa.types.is_date, pa.types.is_time, pa.types.is_duration)
# Tail check: a shift confined to the extremes moves neither the deciles (PSI) nor much of the CDF
# (KS, Wasserstein). The share of current values beyond the reference's 0.5% / 99.5% quantiles is
# compared with the reference's own share (one-sided Fisher exact test); it is a drift reason when it
# is significant and large: at least _TAIL_MIN_EXCESS more of the rows and _TAIL_RATIO times as many.
_TAIL_Q = 0.005
_TAIL_MIN_EXCESS = 0.01
_TAIL_RATIO = 3.0
_TAIL_P = 1e-3
_MIN_TAIL_ROWS = 10
_MIN_TAIL_REFERENCE = 100


@dataclass(frozen=True)
class DriftReport:
    """Drift of every compared column plus the dataset-level verdict."""

    features: tuple[FeatureDrift, ...]
    n_reference: int
    n_current: int
    verdict: str  # "effect" or "p_value": how column verdicts were made
    multiple_testing: str
    alpha: float
    dataset_drift: bool
    prediction_drift: bool
    drift_share: float
    n_drifted: int
    dataset_p_value: float | None
    missing_in_current: tuple[str, ...] = ()
    new_in_current: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)
    note: str = ""
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def drifted_features(self) -> list[str]:
        return [f.column for f in self.features if f.drifted and not f.prediction]

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.column == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable_dict(
            {
                "schema_version": 1,
                "kind": "drift_report",
                "created": self.created,
                "n_reference": self.n_reference,
                "n_current": self.n_current,
                "verdict": self.verdict,
                "multiple_testing": self.multiple_testing,
                "alpha": self.alpha,
                "dataset_drift": self.dataset_drift,
                "prediction_drift": self.prediction_drift,
                "drift_share": self.drift_share,
                "n_drifted": self.n_drifted,
                "drifted_features": self.drifted_features,
                "dataset_p_value": self.dataset_p_value,
                "missing_in_current": list(self.missing_in_current),
                "new_in_current": list(self.new_in_current),
                "skipped": self.skipped,
                "note": self.note,
                "features": [f.to_dict() for f in self.features],
            }
        )


def _is_numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _is_categorical(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_dictionary(t)
    )


def resolve_columns(
    ref: TableSource, cur: TableSource, columns: Sequence[str] | None, cfg: DriftConfig
) -> tuple[list[str], tuple[str, ...], tuple[str, ...], dict[str, str]]:
    """Columns to compare, columns missing from current, new in current, and skipped (with why)."""
    ref_cols, cur_cols = ref.columns, cur.columns
    if columns is not None:
        unknown = [c for c in columns if c not in ref_cols]
        if unknown:
            raise DataError(f"Columns {unknown} are not in the reference data; it has {ref_cols}.")
        wanted = list(columns)
    else:
        wanted = list(ref_cols)
    missing = tuple(c for c in wanted if c not in cur_cols)
    new = tuple(c for c in cur_cols if c not in ref_cols) if columns is None else ()
    skipped: dict[str, str] = {}
    out = []
    for c in wanted:
        if c in missing:
            continue
        ccfg = cfg.columns.get(c)
        if ccfg is not None and ccfg.ignore:
            skipped[c] = "ignored by config"
            continue
        t = ref.type_of(c)
        if any(check(t) for check in _SKIP_TYPES):
            skipped[c] = f"type {t} is not compared"
            continue
        if not (_is_numeric(t) or _is_categorical(t) or pa.types.is_null(t)):
            skipped[c] = f"type {t} is not supported"
            continue
        out.append(c)
    return out, missing, new, skipped


def _to_float(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int, int]:
    """Finite values of one chunk as float64, the count of missing ones (nulls and NaN) and of infinities.

    Infinities are kept out of the statistics (they would turn Wasserstein into inf - inf = NaN) and
    counted on their own: a change of their share is a drift reason like a change of the missing rate.
    """
    if pa.types.is_null(arr.type):
        return np.empty(0), len(arr), 0
    if pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_decode(arr) if hasattr(pc, "dictionary_decode") else arr.cast(arr.type.value_type)
    if not pa.types.is_floating(arr.type):
        arr = pc.cast(arr, pa.float64())
    nulls = arr.null_count
    values = arr.to_numpy(zero_copy_only=False) if nulls == 0 else pc.drop_null(arr).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    n_bad = values.size - int(np.count_nonzero(finite))
    if not n_bad:
        return values, nulls, 0
    n_nan = int(np.count_nonzero(np.isnan(values)))
    return values[finite], nulls + n_nan, n_bad - n_nan


def _numeric_column(src: TableSource, name: str) -> tuple[np.ndarray, int, int, int]:
    """``(sorted finite values, missing count, rows, infinite count)`` of one column, read chunk by chunk.

    The values land in one private float64 buffer sized from the row count and are sorted in place:
    the only O(rows) memory is this one column of this one side.
    """
    buf = np.empty(src.num_rows, dtype=np.float64)
    k = missing = rows = infinite = 0
    for chunk in src.iter_column(name):
        values, miss, inf = _to_float(chunk)
        rows += len(chunk)
        missing += miss
        infinite += inf
        if k + values.size > buf.size:  # more rows than counted up front (a file grew): grow once
            buf = np.concatenate([buf[:k], np.empty(max(values.size, buf.size // 2 + 1), dtype=np.float64)])
        buf[k : k + values.size] = values
        k += values.size
    out = buf[:k]
    out.sort()
    return out, missing, rows, infinite


def _tail_shift(rv: np.ndarray, cv: np.ndarray) -> str:
    """Why the tails of sorted ``cv`` differ from those of sorted ``rv`` (empty string: they do not).

    The text names shares and percentiles only, never a data value (the column may hold personal data).
    """
    n_r, n_c = int(rv.size), int(cv.size)
    if n_r < _MIN_TAIL_REFERENCE or n_c < _MIN_TAIL_ROWS:
        return ""
    lo = rv[int(_TAIL_Q * n_r)]
    hi = rv[min(n_r - 1, int((1.0 - _TAIL_Q) * n_r))]
    for side, pct, r_out, c_out in (
        ("upper", 100 * (1 - _TAIL_Q), n_r - int(np.searchsorted(rv, hi, "right")),
         n_c - int(np.searchsorted(cv, hi, "right"))),
        ("lower", 100 * _TAIL_Q, int(np.searchsorted(rv, lo, "left")), int(np.searchsorted(cv, lo, "left"))),
    ):
        share_r, share_c = r_out / n_r, c_out / n_c
        if c_out < _MIN_TAIL_ROWS or share_c - share_r < _TAIL_MIN_EXCESS or share_c < _TAIL_RATIO * share_r:
            continue
        p = float(fisher_exact([[c_out, n_c - c_out], [r_out, n_r - r_out]], alternative="greater").pvalue)
        if p < _TAIL_P:
            where = "above" if side == "upper" else "below"
            return (f"{side} tail: {share_c:.1%} of current values lie {where} the reference's {pct:g}th "
                    f"percentile ({share_r:.1%} of reference values), p={p:.1e}")
    return ""


def _category_surge(ref: dict[str, int], cur: dict[str, int]) -> str:
    """Why one known category's share grew far beyond the reference's (empty string: none did).

    The categorical counterpart of the tail check: a rare category rising from 1% to 4% of rows barely
    moves Jensen-Shannon or PSI. Same test and limits as the tails; new categories have their own reason.
    The text names shares only, never the category (it may be personal data).
    """
    n_r, n_c = sum(ref.values()), sum(cur.values())
    if n_r < _MIN_TAIL_REFERENCE or n_c < _MIN_TAIL_ROWS:
        return ""
    best: tuple[float, float, float] | None = None
    for value, c in cur.items():
        r = ref.get(value, 0)
        if not r or c < _MIN_TAIL_ROWS:
            continue
        share_r, share_c = r / n_r, c / n_c
        if share_c - share_r < _TAIL_MIN_EXCESS or share_c < _TAIL_RATIO * share_r:
            continue
        p = float(fisher_exact([[c, n_c - c], [r, n_r - r]], alternative="greater").pvalue)
        if p < _TAIL_P and (best is None or p < best[0]):
            best = (p, share_r, share_c)
    if best is None:
        return ""
    p, share_r, share_c = best
    return f"a category holding {share_r:.1%} of reference rows holds {share_c:.1%} of current rows, p={p:.1e}"


def _categorical_column(src: TableSource, name: str) -> tuple[dict[str, int], int]:
    """``(counts of each non-missing value, rows)`` of one column, accumulated chunk by chunk."""
    counts: dict[str, int] = {}
    rows = 0
    for chunk in src.iter_column(name):
        rows += len(chunk)
        for value, c in frequency_table(chunk).items():
            counts[value] = counts.get(value, 0) + c
    return counts, rows


def _few_distinct(src: TableSource, name: str, limit: int) -> bool:
    """True when the column has at least one value and at most ``limit`` distinct ones (streamed)."""
    seen: set[Any] = set()
    any_rows = False
    for chunk in src.iter_column(name):
        any_rows = any_rows or len(chunk) > 0
        seen.update(pc.unique(chunk).to_pylist())
        seen.discard(None)
        if len(seen) > limit:
            return False
    return any_rows


def _kind_of(name: str, ref: TableSource, cur: TableSource, cfg: DriftConfig) -> ColumnKind:
    ccfg = cfg.columns.get(name)
    if ccfg is not None and ccfg.kind is not None:
        return ccfg.kind
    t = ref.type_of(name)
    if pa.types.is_null(t):
        t = cur.type_of(name)
    if pa.types.is_integer(t) and ref.num_rows and _few_distinct(ref, name, cfg.categorical_max_distinct):
        return "categorical"
    if _is_numeric(t) or pa.types.is_null(t):
        return "numeric"
    return "categorical"


def _verdict_test(kind: ColumnKind, basis: str, ccfg: ColumnDriftConfig | None, cfg: DriftConfig) -> tuple[str, float]:
    if ccfg is not None and ccfg.test is not None:
        name = ccfg.test
        if kind == "numeric" and name in ("chi2", "js"):
            raise ConfigError(f"Drift test {name!r} is for categorical columns; the column is numeric.")
        if kind == "categorical" and name in ("ks", "wasserstein"):
            raise ConfigError(f"Drift test {name!r} is for numeric columns; the column is categorical.")
    elif basis == "p_value":
        name = "ks" if kind == "numeric" else "chi2"
    else:
        name = cfg.numeric_test if kind == "numeric" else cfg.categorical_test
    if ccfg is not None and ccfg.threshold is not None:
        return name, ccfg.threshold
    if name in ("ks", "chi2"):
        return name, cfg.thresholds.get(name, cfg.alpha) if name in cfg.thresholds else cfg.alpha
    return name, cfg.thresholds[name]


def column_drift(name: str, ref: TableSource, cur: TableSource, cfg: DriftConfig) -> FeatureDrift:
    """Statistics of one column (verdict not yet decided: ``drifted`` is set by ``compute_drift``).

    Categorical columns are counted chunk by chunk (memory: the category table). Numeric columns
    need exact order statistics for KS and Wasserstein: each side is gathered into one private
    float64 array and sorted in place, so memory is O(rows) for this one column, never O(rows x columns).
    """
    kind = _kind_of(name, ref, cur, cfg)
    prediction = name.startswith(PREDICTION_PREFIX)
    note = ""
    tests: dict[str, TestResult] = {}
    new: tuple[str, ...] = ()
    unseen: tuple[str, ...] = ()
    hist: dict[str, Any] = {}
    reasons: list[str] = []
    new_share = 0.0
    if kind == "numeric":
        try:
            rv, r_missing, n_ref_rows, r_inf = _numeric_column(ref, name)
            cv, c_missing, n_cur_rows, c_inf = _numeric_column(cur, name)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            return _type_changed(name, kind, ref, cur, prediction, str(e))
        n_r, n_c = rv.size, cv.size
        if n_r and n_c:
            s = sorted_statistics(rv, cv, psi_bins=cfg.psi_bins)
            tests = s.results()
            hist = s.histogram
            tail = _tail_shift(rv, cv)
            if tail:
                reasons.append(tail)
        del rv, cv
        if n_cur_rows:
            inf_r = r_inf / n_ref_rows if n_ref_rows else 0.0
            inf_c = c_inf / n_cur_rows
            unseen_inf = not r_inf and c_inf >= _MIN_TAIL_ROWS and inf_c >= _TAIL_MIN_EXCESS
            if c_inf and (inf_c - inf_r > cfg.missing_rate_threshold or unseen_inf):
                reasons.append(f"infinite values {inf_r:.1%} -> {inf_c:.1%} ({c_inf} rows)")
    else:
        try:
            rt, n_ref_rows = _categorical_column(ref, name)
            ct, n_cur_rows = _categorical_column(cur, name)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            return _type_changed(name, kind, ref, cur, prediction, str(e))
        n_r, n_c = sum(rt.values()), sum(ct.values())
        r_missing, c_missing = n_ref_rows - n_r, n_cur_rows - n_c
        if n_r and n_c:
            cs = categorical_statistics(rt, ct)
            tests = cs.results()
            new, unseen, hist, new_share = cs.new_categories, cs.unseen_categories, cs.histogram, cs.new_share
            surge = _category_surge(rt, ct)
            if surge:
                reasons.append(surge)
    miss_r = r_missing / n_ref_rows if n_ref_rows else 0.0
    miss_c = c_missing / n_cur_rows if n_cur_rows else 0.0
    if not tests:
        if n_ref_rows == 0 or n_r == 0:
            note = "no non-missing reference values"
        elif n_cur_rows == 0:
            note = "no current rows"
        else:
            note = "no non-missing current values"
    if n_cur_rows and abs(miss_c - miss_r) > cfg.missing_rate_threshold:
        reasons.append(f"missing rate {miss_r:.1%} -> {miss_c:.1%}")
    if new and new_share > cfg.new_category_share:
        reasons.append(f"new categories {list(new[:5])} hold {new_share:.1%} of current rows")
    return FeatureDrift(
        column=name,
        kind=kind,
        n_reference=n_r,
        n_current=n_c,
        tests=tests,
        verdict_test="",
        threshold=0.0,
        drifted=False,
        p_value=None,
        missing_reference=miss_r,
        missing_current=miss_c,
        new_categories=new,
        unseen_categories=unseen,
        reasons=tuple(reasons),
        prediction=prediction,
        note=note,
        histogram=hist,
    )


def _type_changed(
    name: str, kind: ColumnKind, ref: TableSource, cur: TableSource, prediction: bool, err: str
) -> FeatureDrift:
    return FeatureDrift(
        column=name,
        kind=kind,
        n_reference=ref.num_rows,
        n_current=cur.num_rows,
        tests={},
        verdict_test="",
        threshold=0.0,
        drifted=False,
        reasons=(f"type changed: reference {ref.type_of(name)}, current {cur.type_of(name)}",),
        prediction=prediction,
        note=f"cannot compare: {err}",
    )


def compute_drift(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    config: DriftConfig | None = None,
    engine: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column.

    Parameters
    ----------
    reference, current
        pandas DataFrames, pyarrow Tables, or Parquet paths/globs (read one column at a time).
    columns
        Columns to compare (default: every supported column of the reference).
    config
        Drift settings (tests, thresholds, verdict basis, multiple-testing method, per-column overrides).
    engine
        ``None``/``"local"`` (threads in this process), ``"dask"`` (a local cluster), a Dask scheduler
        address, a ``distributed.Client``, or any object with a ``client`` attribute holding one.
    progress
        Optional ``(done, total)`` callback, one call per finished column.
    """
    cfg = config or DriftConfig()
    ref = TableSource.from_any(reference)
    cur = TableSource.from_any(current)
    names, missing, new, skipped = resolve_columns(ref, cur, columns, cfg)
    for c in names:
        ccfg = cfg.columns.get(c)
        if ccfg is not None and ccfg.test is not None and ccfg.kind is not None:
            _verdict_test(ccfg.kind, "effect", ccfg, cfg)  # fail fast on a test/kind mismatch
    total = len(names)
    if progress:
        progress(0, total)
    if engine is None or engine == "local":
        results = _run_local(names, ref, cur, cfg, progress)
    else:
        from bastion.monitor._dask import run_columns_dask

        results = run_columns_dask(names, ref, cur, cfg, engine, progress)
    return finalize(results, ref.num_rows, cur.num_rows, cfg, missing, new, skipped)


def _run_local(
    names: list[str], ref: TableSource, cur: TableSource, cfg: DriftConfig, progress: Callable[[int, int], None] | None
) -> list[FeatureDrift]:
    workers = max(1, min(len(names), int(os.environ.get("BASTION_MONITOR_THREADS", "0")) or (os.cpu_count() or 1)))
    out: list[FeatureDrift] = []
    if workers == 1:
        for i, n in enumerate(names):
            out.append(column_drift(n, ref, cur, cfg))
            if progress:
                progress(i + 1, len(names))
        return out
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bastion-drift") as pool:
        futures = [pool.submit(column_drift, n, ref, cur, cfg) for n in names]
        for i, fut in enumerate(futures):
            out.append(fut.result())
            if progress:
                progress(i + 1, len(names))
    return out


def dataset_verdict(
    features: Sequence[FeatureDrift], n_cur: int, cfg: DriftConfig, missing: Sequence[str] = ()
) -> tuple[bool, int, float]:
    """``(dataset drifted, drifted feature count, drifted share)``; prediction columns do not count."""
    feats = [f for f in features if not f.prediction]
    n_drifted = sum(f.drifted for f in feats)
    share = n_drifted / len(feats) if feats else 0.0
    needed = max(1, math.ceil(cfg.dataset_drift_share * len(feats))) if feats else 1
    return n_cur > 0 and (n_drifted >= needed or bool(missing)), n_drifted, share


def finalize(
    results: list[FeatureDrift],
    n_ref: int,
    n_cur: int,
    cfg: DriftConfig,
    missing: tuple[str, ...] = (),
    new: tuple[str, ...] = (),
    skipped: dict[str, str] | None = None,
) -> DriftReport:
    """Apply multiple-testing control and verdicts to per-column statistics."""
    if cfg.verdict == "auto":
        basis = "p_value" if min(n_ref, n_cur) <= cfg.small_sample else "effect"
    else:
        basis = cfg.verdict
    # The family for multiple-testing control: each column's hypothesis test (KS or chi-square).
    raw: list[tuple[int, float]] = []
    for i, f in enumerate(results):
        p_test = f.tests["ks" if f.kind == "numeric" else "chi2"].p_value if f.tests else None
        if p_test is not None:
            raw.append((i, p_test))
    adjusted = adjust_p_values([p for _, p in raw], cfg.multiple_testing)
    adj_by_index = {i: float(a) for (i, _), a in zip(raw, adjusted, strict=True)}
    final: list[FeatureDrift] = []
    for i, f in enumerate(results):
        ccfg = cfg.columns.get(f.column)
        test, threshold = _verdict_test(f.kind, basis, ccfg, cfg)
        p_raw = f.tests["ks" if f.kind == "numeric" else "chi2"].p_value if f.tests else None
        p_adj = adj_by_index.get(i)
        drifted = bool(f.reasons)
        if test in f.tests:
            r = f.tests[test]
            drifted = r.exceeds(threshold, p_value=p_adj) or drifted
        final.append(
            replace(f, verdict_test=test, threshold=threshold, drifted=drifted, p_value=p_raw, p_value_adjusted=p_adj)
        )
    dataset_drift, n_drifted, share = dataset_verdict(final, n_cur, cfg, missing)
    note = ""
    if n_cur == 0:
        note = "the current window is empty: no verdict"
    elif not final:
        note = "no comparable columns"
    return DriftReport(
        features=tuple(final),
        n_reference=n_ref,
        n_current=n_cur,
        verdict=basis,
        multiple_testing=cfg.multiple_testing,
        alpha=cfg.alpha,
        dataset_drift=dataset_drift,
        prediction_drift=n_cur > 0 and any(f.drifted for f in final if f.prediction),
        drift_share=share,
        n_drifted=n_drifted,
        dataset_p_value=float(min(adjusted)) if len(adjusted) else None,
        missing_in_current=missing,
        new_in_current=new,
        skipped=dict(skipped or {}),
        note=note,
    )
