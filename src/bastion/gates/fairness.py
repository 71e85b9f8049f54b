"""Vectorized group-fairness metrics from per-group confusion counts (one bincount pass over the rows).

Values equal fairlearn's ``MetricFrame`` and its disparity functions (same conventions: a group with
no positives has TPR 0.0, difference = max - min, ratio = min / max) at a fraction of the cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bastion.errors import DataError

__all__ = [
    "RATES",
    "FairnessReport",
    "GroupingFairness",
    "compute_fairness",
    "confusion_by_cell",
    "rates_from_counts",
]

RATES = ("selection_rate", "tpr", "fpr", "fnr", "accuracy")
MISSING = "(missing)"
# Beyond this many cells the dense (cells x 4) table is replaced by np.unique over the present cells.
_DENSE_LIMIT = 5_000_000


def _binary(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.dtype.kind in "iuf":
        out = arr.astype(np.int64, copy=False)
        if out.size and (out.min() < 0 or out.max() > 1 or (arr.dtype.kind == "f" and not np.array_equal(out, arr))):
            raise DataError(f"{name} must hold 0/1 labels (1 = positive class); got values outside {{0, 1}}.")
        return out
    raise DataError(f"{name} must be 0/1 or boolean; got dtype {arr.dtype}. Map the positive class to 1 first.")


def rates_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Rates from an ``(n, 4)`` array of ``[tn, fp, fn, tp]`` counts, fairlearn's conventions."""
    c = counts.astype(np.float64)
    tn, fp, fn, tp = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    n = tn + fp + fn + tp
    pos = tp + fn
    neg = tn + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        # sklearn's normalised confusion matrix sets rows with no true members to 0, and fairlearn keeps that
        tpr = np.where(pos > 0, tp / np.where(pos > 0, pos, 1), 0.0)
        fnr = np.where(pos > 0, fn / np.where(pos > 0, pos, 1), 0.0)
        fpr = np.where(neg > 0, fp / np.where(neg > 0, neg, 1), 0.0)
        sel = np.where(n > 0, (tp + fp) / np.where(n > 0, n, 1), np.nan)
        acc = np.where(n > 0, (tp + tn) / np.where(n > 0, n, 1), np.nan)
    return {"selection_rate": sel, "tpr": tpr, "fpr": fpr, "fnr": fnr, "accuracy": acc, "count": n}


def _codes(name: str, col: Any) -> tuple[np.ndarray, list[Any]]:
    s = col if isinstance(col, pd.Series) else pd.Series(np.asarray(col))
    codes, uniques = pd.factorize(s, sort=True, use_na_sentinel=True)
    labels = [u.item() if hasattr(u, "item") else u for u in list(uniques)]
    if (codes < 0).any():
        # missing values form their own reported group rather than vanishing from the metrics
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(MISSING)
    return codes.astype(np.int64, copy=False), labels


def confusion_by_cell(
    y_true: np.ndarray, y_pred: np.ndarray, codes: Sequence[np.ndarray], sizes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion counts for every non-empty cell of the full cross of ``codes``.

    One pass: the cell index and the confusion index are packed into one integer per row and counted
    with a single ``np.bincount``. Returns ``(cell_keys, counts)``: the raveled cell indices (sorted)
    and a ``(cells, 4)`` array of ``[tn, fp, fn, tp]``.
    """
    cm = y_true * 2 + y_pred  # 0 tn, 1 fp, 2 fn, 3 tp
    cells = math.prod(sizes) if sizes else 1
    key = np.zeros(len(cm), dtype=np.int64)
    for c, k in zip(codes, sizes, strict=True):
        key *= k
        key += c
    if cells * 4 <= _DENSE_LIMIT:
        flat = np.bincount(key * 4 + cm, minlength=cells * 4).reshape(cells, 4)
        present = np.flatnonzero(flat.any(axis=1))
        return present, flat[present]
    # very many possible cells (high-cardinality attributes): count only the cells that occur
    present, inv = np.unique(key, return_inverse=True)
    return present, np.bincount(inv * 4 + cm, minlength=len(present) * 4).reshape(-1, 4)


@dataclass(frozen=True)
class GroupingFairness:
    """Per-group rates and disparities for one attribute or one intersection of attributes."""

    attributes: tuple[str, ...]
    groups: tuple[tuple[Any, ...], ...]
    counts: np.ndarray  # (groups, 4) tn fp fn tp
    rates: dict[str, np.ndarray]
    overall: dict[str, float]
    disparities: dict[str, float]
    small_groups: tuple[tuple[Any, ...], ...]
    disparities_large: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return " x ".join(self.attributes)

    def table(self) -> pd.DataFrame:
        """One row per group: count, rates, and whether the group is under the minimum size."""
        idx = (
            pd.Index([g[0] for g in self.groups], name=self.attributes[0])
            if len(self.attributes) == 1
            else pd.MultiIndex.from_tuples(list(self.groups), names=list(self.attributes))
        )
        df = pd.DataFrame({"count": self.rates["count"].astype(np.int64)}, index=idx)
        for r in RATES:
            df[r] = self.rates[r]
        small = set(self.small_groups)
        df["small"] = [g in small for g in self.groups]
        return df

    def to_dict(self) -> dict[str, Any]:
        small = set(self.small_groups)
        groups = []
        for i, g in enumerate(self.groups):
            row: dict[str, Any] = {"group": {a: _plain(v) for a, v in zip(self.attributes, g, strict=True)}}
            row["count"] = int(self.rates["count"][i])
            for r in RATES:
                row[r] = _num(self.rates[r][i])
            row["tn"], row["fp"], row["fn"], row["tp"] = (int(x) for x in self.counts[i])
            row["small"] = g in small
            groups.append(row)
        return {
            "attributes": list(self.attributes),
            "name": self.name,
            "groups": groups,
            "overall": {k: _num(v) for k, v in self.overall.items()},
            "disparities": {k: _num(v) for k, v in self.disparities.items()},
            "disparities_without_small_groups": {k: _num(v) for k, v in self.disparities_large.items()},
            "small_groups": [
                {a: _plain(v) for a, v in zip(self.attributes, g, strict=True)} for g in self.small_groups
            ],
        }


@dataclass(frozen=True)
class FairnessReport:
    """Fairness of one set of predictions for every requested grouping."""

    groupings: tuple[GroupingFairness, ...]
    min_group_size: int
    rows: int

    def get(self, *attributes: str) -> GroupingFairness:
        for g in self.groupings:
            if g.attributes == tuple(attributes):
                return g
        raise KeyError(" x ".join(attributes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "min_group_size": self.min_group_size,
            "groupings": [g.to_dict() for g in self.groupings],
        }


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _num(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def _diff(values: np.ndarray) -> float:
    return float(values.max() - values.min()) if len(values) else math.nan


def _ratio(values: np.ndarray) -> float:
    if not len(values):
        return math.nan
    lo, hi = float(values.min()), float(values.max())
    if hi == 0.0:
        return math.nan if lo == 0.0 else math.inf  # pandas: 0/0 -> NaN
    return lo / hi


def _diff_overall(values: np.ndarray, overall: float) -> float:
    return float(np.abs(values - overall).max()) if len(values) else math.nan


def _ratio_overall(values: np.ndarray, overall: float) -> float:
    # fairlearn: ratio of each group to overall, inverted when above 1, then the minimum skipping NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        r = values / overall
        r = np.where(r > 1, 1.0 / r, r)
    r = r[~np.isnan(r)]
    return float(r.min()) if len(r) else math.nan


def _py_min(a: float, b: float) -> float:
    return min(a, b)


def _py_max(a: float, b: float) -> float:
    return max(a, b)


def _nanmean2(a: float, b: float) -> float:
    vals = [v for v in (a, b) if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def disparities(rates: Mapping[str, np.ndarray], overall: Mapping[str, float]) -> dict[str, float]:
    """Demographic parity, equalized odds (worst case and mean) and equal opportunity, both methods."""
    out: dict[str, float] = {}
    sel, tpr, fpr = rates["selection_rate"], rates["tpr"], rates["fpr"]
    for suffix, d, r in (
        ("", _diff, _ratio),
        ("_to_overall", None, None),
    ):
        if d is None:
            dsel = _diff_overall(sel, overall["selection_rate"])
            rsel = _ratio_overall(sel, overall["selection_rate"])
            dtpr = _diff_overall(tpr, overall["tpr"])
            rtpr = _ratio_overall(tpr, overall["tpr"])
            dfpr = _diff_overall(fpr, overall["fpr"])
            rfpr = _ratio_overall(fpr, overall["fpr"])
        else:
            assert r is not None
            dsel, rsel, dtpr, rtpr, dfpr, rfpr = d(sel), r(sel), d(tpr), r(tpr), d(fpr), r(fpr)
        out["demographic_parity_difference" + suffix] = dsel
        out["demographic_parity_ratio" + suffix] = rsel
        out["equal_opportunity_difference" + suffix] = dtpr
        out["equal_opportunity_ratio" + suffix] = rtpr
        out["equalized_odds_difference" + suffix] = _py_max(dtpr, dfpr)
        out["equalized_odds_ratio" + suffix] = _py_min(rtpr, rfpr)
        out["equalized_odds_difference_mean" + suffix] = _nanmean2(dtpr, dfpr)
        out["equalized_odds_ratio_mean" + suffix] = _nanmean2(rtpr, rfpr)
    return out


def compute_fairness(
    y_true: Any,
    y_pred: Any,
    sensitive: pd.DataFrame | Mapping[str, Any],
    *,
    groupings: Sequence[Sequence[str]] | None = None,
    min_group_size: int = 0,
) -> FairnessReport:
    """Per-group rates and disparities for each grouping of the sensitive columns.

    Parameters
    ----------
    y_true, y_pred
        0/1 labels (1 = positive class), one per row.
    sensitive
        Columns of sensitive attributes, one value per row.
    groupings
        Tuples of column names; default: each column alone, then all columns together when there are several.
    min_group_size
        Groups with fewer rows are listed in ``small_groups`` (they stay in every metric).
    """
    yt = _binary("y_true", y_true)
    yp = _binary("y_pred", y_pred)
    if len(yt) != len(yp):
        raise DataError(f"y_true has {len(yt)} rows but y_pred has {len(yp)}; they must match.")
    if len(yt) == 0:
        raise DataError("No rows to compute fairness on; the data is empty.")
    cols: dict[str, Any] = dict(sensitive.items()) if isinstance(sensitive, pd.DataFrame) else dict(sensitive)
    if not cols:
        raise DataError("No sensitive attributes given; fairness needs at least one column.")
    names = list(cols)
    if groupings is None:
        groupings = [(n,) for n in names] + ([tuple(names)] if len(names) > 1 else [])
    used = [n for n in names if any(n in g for g in groupings)]
    for g in groupings:
        for a in g:
            if a not in cols:
                raise DataError(f"Grouping {' x '.join(g)} names '{a}', which is not a sensitive column {names}.")
    coded: dict[str, tuple[np.ndarray, list[Any]]] = {}
    for n in used:
        if len(cols[n]) != len(yt):
            raise DataError(f"Sensitive column '{n}' has {len(cols[n])} rows; the labels have {len(yt)}.")
        coded[n] = _codes(n, cols[n])
    sizes = [len(coded[n][1]) for n in used]
    cell_keys, cell_counts = confusion_by_cell(yt, yp, [coded[n][0] for n in used], sizes)
    cell_codes = np.unravel_index(cell_keys, sizes) if used else ()

    overall_rates = rates_from_counts(cell_counts.sum(axis=0, keepdims=True))
    overall = {k: float(v[0]) for k, v in overall_rates.items() if k != "count"}

    results = []
    for g in groupings:
        sub_codes = tuple(cell_codes[used.index(a)] for a in g)
        sub_sizes = tuple(sizes[used.index(a)] for a in g)
        gkey = np.ravel_multi_index(sub_codes, sub_sizes) if len(g) > 1 else sub_codes[0]
        gkeys, ginv = np.unique(gkey, return_inverse=True)
        counts = np.zeros((len(gkeys), 4), dtype=np.int64)
        np.add.at(counts, ginv, cell_counts)
        gcodes = np.unravel_index(gkeys, sub_sizes)
        labels = tuple(
            tuple(coded[a][1][int(gcodes[k][i])] for k, a in enumerate(g)) for i in range(len(gkeys))
        )
        rates = rates_from_counts(counts)
        disp = disparities(rates, overall)
        small_mask = rates["count"] < min_group_size
        small = tuple(lab for lab, s in zip(labels, small_mask, strict=True) if s)
        large: dict[str, float] = {}
        if small and (~small_mask).sum() >= 2:
            large = disparities({k: v[~small_mask] for k, v in rates.items()}, overall)
        elif not small:
            large = dict(disp)
        # else: fewer than two groups are large enough, so leaving the small ones out would compare one
        # group with itself (a disparity of 0 that passes any threshold): no "without small groups" figure,
        # and a check that excludes small groups falls back to every group.
        results.append(
            GroupingFairness(
                attributes=tuple(g), groups=labels, counts=counts, rates=rates, overall=overall,
                disparities=disp, small_groups=small, disparities_large=large,
            )
        )
    return FairnessReport(groupings=tuple(results), min_group_size=min_group_size, rows=len(yt))
