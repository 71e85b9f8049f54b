"""k-anonymity enforcement: generalise quasi-identifiers along hierarchies (date → month → year → 5/10
years, ZIP → ZIP3 → ZIP2, numbers → 5/10/20-wide bands) until every class holds ``min_k`` rows, then
suppress the few rows still below it, or fail and list the classes below ``min_k``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["HIERARCHIES", "LEVELS", "KAnonPlan", "generalise", "plan_k_anonymity", "qi_kind"]

#: the default hierarchy of each kind of quasi-identifier (first = finest); "*" hides the column
HIERARCHIES: dict[str, tuple[str, ...]] = {
    "date": ("raw", "month", "year", "year5", "year10"),
    "zip": ("raw", "zip3", "zip2", "zip1"),
    "number": ("raw", "band5", "band10", "band20"),
    "category": ("raw",),
}
LEVELS = frozenset({lvl for h in HIERARCHIES.values() for lvl in h} | {"*"})
_ZIP_NAMES = ("zip", "zipcode", "zip_code", "postcode", "postal_code", "plz")


def qi_kind(name: str, arr_type: pa.DataType, entity: str | None) -> str:
    """Which hierarchy a quasi-identifier follows."""
    if entity == "DATE_OF_BIRTH" or pa.types.is_temporal(arr_type):
        return "date"
    if entity == "US_ZIP" or name.lower() in _ZIP_NAMES:
        return "zip"
    if pa.types.is_integer(arr_type) or pa.types.is_floating(arr_type) or pa.types.is_decimal(arr_type):
        return "number"
    return "category"


def _text(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        try:
            arr = arr.cast(pa.string())
        except pa.ArrowException:
            arr = pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string())
    return pd.Series(arr.to_pylist(), dtype=object)


def _band(num: pd.Series, width: int) -> pd.Series:
    lo = (np.floor(num / width) * width).astype("Int64")
    out = lo.astype(str) + "-" + (lo + width - 1).astype(str)
    return out.where(num.notna(), None)


def generalise(arr: pa.Array | pa.ChunkedArray, kind: str, level: str) -> pd.Series:
    """The values of ``arr`` at one level of its hierarchy, as strings (None where unreadable)."""
    s = _text(arr)
    if level == "*":
        return pd.Series(["*" if v is not None else None for v in s.tolist()], dtype=object)
    if level == "raw":
        return s
    if kind == "date":
        parts = s.str.extract(r"((?:1[89]|20)\d\d)-(\d\d)")
        year = parts[0].fillna(s.str.extract(r"\b((?:1[89]|20)\d\d)\b", expand=False))
        if level == "month":
            return (parts[0] + "-" + parts[1]).where(parts[1].notna(), None)
        if level == "year":
            return year.where(year.notna(), None)
        width = 5 if level == "year5" else 10
        return _band(pd.to_numeric(year, errors="coerce"), width)
    if kind == "zip":
        digits = s.str.extract(r"^\s*(\d{1,5})(?!\d)", expand=False)
        n = {"zip3": 3, "zip2": 2, "zip1": 1}.get(level, 5)
        return digits.str[:n].where(digits.notna(), None)
    if kind == "number":
        num = pd.to_numeric(s, errors="coerce")
        return _band(num, {"band5": 5, "band10": 10, "band20": 20}.get(level, 10))
    return s


def _keys(frame: Mapping[str, pd.Series]) -> pd.Series:
    cols = list(frame.values())
    key = cols[0].fillna("\x00").astype(str)
    for c in cols[1:]:
        key = key + "\x1f" + c.fillna("\x00").astype(str)
    return key


@dataclass
class KAnonPlan:
    """The chosen level of each quasi-identifier and the classes whose rows are suppressed."""

    kinds: dict[str, str]
    levels: dict[str, str]
    min_k: int
    suppress: frozenset[str] = frozenset()
    suppressed_rows: int = 0
    classes_below: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = True

    def generalised(self, batch: pa.RecordBatch) -> dict[str, pd.Series]:
        return {q: generalise(batch.column(q), self.kinds[q], self.levels[q]) for q in self.levels}

    def keep_mask(self, values: Mapping[str, pd.Series]) -> np.ndarray | None:
        """Rows to keep (None: all) given the generalised quasi-identifiers of a batch."""
        if not self.suppress:
            return None
        return np.asarray(~_keys(values).isin(self.suppress), dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": dict(self.levels),
            "suppressed_rows": self.suppressed_rows,
            "classes_below_min_k": self.classes_below,
        }


def plan_k_anonymity(
    table: pa.Table,
    kinds: Mapping[str, str],
    start: Mapping[str, str],
    *,
    min_k: int,
    max_suppression: float,
    hierarchies: Mapping[str, Sequence[str]] | None = None,
) -> KAnonPlan:
    """Greedy search up the hierarchies: each step raises the quasi-identifier that leaves fewest rows
    below ``min_k``; stop when the rows below fit the suppression budget (they are suppressed)."""
    qis = list(kinds)
    hier = {
        q: tuple((hierarchies or {}).get(q) or HIERARCHIES[kinds[q]]) for q in qis
    }
    idx = {}
    for q in qis:
        h = hier[q]
        idx[q] = h.index(start[q]) if start[q] in h else 0
        if start[q] not in h:
            hier[q] = (start[q],)
            idx[q] = 0
    n = table.num_rows
    budget = int(max_suppression * n)
    cache: dict[tuple[str, str], pd.Series] = {}

    def values(q: str, lvl: str) -> pd.Series:
        if (q, lvl) not in cache:
            cache[(q, lvl)] = generalise(table.column(q), kinds[q], lvl)
        return cache[(q, lvl)]

    def below(levels: Mapping[str, str]) -> tuple[int, pd.Series]:
        key = _keys({q: values(q, levels[q]) for q in qis})
        sizes = key.map(key.value_counts())
        return int((sizes < min_k).sum()), key

    levels = {q: hier[q][idx[q]] for q in qis}
    count, key = below(levels)
    while count > budget:
        best: tuple[int, int, str] | None = None
        for rank, q in enumerate(qis):
            if idx[q] + 1 >= len(hier[q]):
                continue
            trial = dict(levels)
            trial[q] = hier[q][idx[q] + 1]
            c, _ = below(trial)
            if best is None or (c, rank) < (best[0], best[1]):
                best = (c, rank, q)
        if best is None:
            break
        q = best[2]
        idx[q] += 1
        levels[q] = hier[q][idx[q]]
        count, key = below(levels)
    counts = key.value_counts()
    small = counts[counts < min_k]
    plan = KAnonPlan(dict(kinds), levels, min_k)
    if count <= budget:
        plan.suppress = frozenset(small.index)
        plan.suppressed_rows = int(small.sum())
        return plan
    plan.ok = False
    for k_, size in small.sort_values().head(10).items():
        parts = str(k_).split("\x1f")
        plan.classes_below.append(
            {"values": {q: (None if v == "\x00" else v) for q, v in zip(qis, parts, strict=True)}, "rows": int(size)}
        )
    plan.suppressed_rows = 0
    return plan
