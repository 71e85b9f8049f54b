"""Validate data against a contract made from a dataset version's recorded schema and statistics.

Reports type changes, missing/new columns, out-of-range values, new categories and null-rate jumps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ColumnContract", "Contract", "ValidationReport", "Violation", "validate"]

_EQUIVALENT = {
    "large_string": "string",
    "string_view": "string",
    "utf8": "string",
    "large_utf8": "string",
    "large_binary": "binary",
    "binary_view": "binary",
}
_MAX_NEW_CATEGORIES = 1000


def _norm_type(t: str) -> str:
    t = t.strip()
    if t.startswith("dictionary<values="):
        t = t[len("dictionary<values=") :].split(",")[0]
    return _EQUIVALENT.get(t, t)


def _mask(value: Any) -> str:
    s = str(value)
    return s[:1] + "*" * min(max(len(s) - 1, 0), 8) if s else ""


@dataclass(frozen=True)
class ColumnContract:
    """What one column looked like when its version was registered."""

    name: str
    type: str
    nullable: bool = True
    null_rate: float | None = None
    min: float | None = None
    max: float | None = None
    categories: frozenset[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "null_rate": self.null_rate,
            "min": self.min,
            "max": self.max,
            "categories": sorted(self.categories) if self.categories is not None else None,
        }


@dataclass(frozen=True)
class Contract:
    """A data contract; ``Contract.from_version(dv)`` builds it from a registered dataset version."""

    columns: tuple[ColumnContract, ...]
    source: str = ""
    null_rate_jump: float = 0.05
    range_tolerance: float = 0.0

    @staticmethod
    def from_schema(
        schema: Iterable[Mapping[str, Any]],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        source: str = "",
        null_rate_jump: float = 0.05,
        range_tolerance: float = 0.0,
    ) -> Contract:
        """From a recorded schema (``[{name, type, nullable}]``) and column statistics."""
        cols = []
        for f in schema:
            st = (stats or {}).get(f["name"], {}) or {}
            count, nulls = st.get("count"), st.get("nulls")
            total = (count or 0) + (nulls or 0) if count is not None and nulls is not None else None
            null_rate = (nulls / total) if total and nulls is not None else None
            cats = st.get("categories")
            if isinstance(cats, Mapping):
                cats = list(cats)
            cols.append(
                ColumnContract(
                    name=str(f["name"]),
                    type=str(f.get("type", "")),
                    nullable=bool(f.get("nullable", True)),
                    null_rate=null_rate,
                    min=_num(st.get("min")),
                    max=_num(st.get("max")),
                    categories=frozenset(str(c) for c in cats) if cats is not None else None,
                )
            )
        return Contract(tuple(cols), source, null_rate_jump, range_tolerance)

    @staticmethod
    def from_version(version: Any, **options: Any) -> Contract:
        """From a ``DatasetVersion`` (its ``schema`` and ``stats``)."""
        name = getattr(version, "name", "dataset")
        ref = f"{name}:{getattr(version, 'version', '?')}"
        return Contract.from_schema(version.schema, version.stats, source=ref, **options)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "source": self.source,
            "null_rate_jump": self.null_rate_jump,
            "range_tolerance": self.range_tolerance,
            "columns": [c.to_dict() for c in self.columns],
        }


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    return None


@dataclass(frozen=True)
class Violation:
    """One way the data breaks the contract; ``observed`` never holds raw values (masked only)."""

    column: str
    check: str  # missing_column, new_column, type_change, out_of_range, new_category, null_rate, nullability
    expected: str
    observed: str
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "check": self.check,
            "expected": self.expected,
            "observed": self.observed,
            "count": self.count,
        }


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of a validation: ``ok`` when there are no violations."""

    source: str
    contract: str
    rows: int
    violations: tuple[Violation, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "kind": "bastion.validation",
            "source": self.source,
            "contract": self.contract,
            "rows": self.rows,
            "ok": self.ok,
            "violations": [v.to_dict() for v in self.violations],
        }


@dataclass
class _Acc:
    rows: int = 0
    nulls: int = 0
    below: int = 0
    above: int = 0
    lo: float | None = None
    hi: float | None = None
    new_cats: dict[str, int] = field(default_factory=dict)
    nans: int = 0


def _batches(data: Any) -> tuple[pa.Schema, Iterable[pa.RecordBatch], str]:
    if isinstance(data, pd.DataFrame):
        t = pa.Table.from_pandas(data, preserve_index=False)
        return t.schema, t.to_batches(), "<memory>"
    if isinstance(data, pa.Table):
        return data.schema, data.to_batches(), "<memory>"
    from bastion.engine import open_source

    src = open_source(Path(data))
    return src.schema, src.batches(65_536), str(data)


def validate(data: Any, contract: Contract) -> ValidationReport:
    """Check ``data`` (a file path, DataFrame or Arrow table) against ``contract``, streaming in batches."""
    schema, batches, source = _batches(data)
    have = {f.name: f for f in schema}
    violations: list[Violation] = []
    checked: dict[str, ColumnContract] = {}
    for c in contract.columns:
        if c.name not in have:
            violations.append(Violation(c.name, "missing_column", "present", "absent"))
            continue
        got = str(have[c.name].type)
        if c.type and _norm_type(got) != _norm_type(c.type):
            violations.append(Violation(c.name, "type_change", c.type, got))
            continue
        checked[c.name] = c
    known = {c.name for c in contract.columns}
    for name in schema.names:
        if name not in known:
            violations.append(Violation(name, "new_column", "absent", str(have[name].type)))
    accs = {n: _Acc() for n in checked}
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        for name, c in checked.items():
            _accumulate(accs[name], batch.column(name), c, contract.range_tolerance)
    for name, c in checked.items():
        violations.extend(_judge(accs[name], c, contract, rows))
    return ValidationReport(source, contract.source, rows, tuple(violations))


def _accumulate(acc: _Acc, arr: pa.Array, c: ColumnContract, tol: float) -> None:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    acc.rows += len(arr)
    acc.nulls += arr.null_count
    t = arr.type
    if pa.types.is_floating(t):
        # NaN is neither below nor above any bound and not an Arrow null: counted as missing, or a
        # file could carry values the contract never allowed past every check.
        nan = int(pc.sum(pc.is_nan(arr)).as_py() or 0)
        acc.nulls += nan
        acc.nans += nan
    if c.min is not None and c.max is not None and (pa.types.is_integer(t) or pa.types.is_floating(t)):
        slack = (c.max - c.min) * tol
        acc.below += int(pc.sum(pc.less(arr, c.min - slack)).as_py() or 0)
        acc.above += int(pc.sum(pc.greater(arr, c.max + slack)).as_py() or 0)
        mm = pc.min_max(arr).as_py()
        if mm["min"] is not None:
            acc.lo = mm["min"] if acc.lo is None else min(acc.lo, mm["min"])
            acc.hi = mm["max"] if acc.hi is None else max(acc.hi, mm["max"])
    if c.categories is not None and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        vc = pc.value_counts(arr.drop_null())
        for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
            if v not in c.categories and (v in acc.new_cats or len(acc.new_cats) < _MAX_NEW_CATEGORIES):
                acc.new_cats[v] = acc.new_cats.get(v, 0) + n


def _judge(acc: _Acc, c: ColumnContract, contract: Contract, rows: int) -> list[Violation]:
    out: list[Violation] = []
    if acc.below or acc.above:
        out.append(
            Violation(
                c.name,
                "out_of_range",
                f"[{c.min:g}, {c.max:g}]",
                f"[{acc.lo:g}, {acc.hi:g}]",
                acc.below + acc.above,
            )
        )
    if acc.new_cats:
        examples = ", ".join(_mask(v) for v in sorted(acc.new_cats)[:5])
        out.append(
            Violation(
                c.name,
                "new_category",
                f"{len(c.categories or ())} known categories",
                f"{len(acc.new_cats)} new (e.g. {examples})",
                sum(acc.new_cats.values()),
            )
        )
    if rows:
        rate = acc.nulls / rows
        if not c.nullable and acc.nulls:
            nan = f" ({acc.nans} NaN)" if acc.nans else ""
            out.append(Violation(c.name, "nullability", "no nulls", f"{acc.nulls} nulls{nan}", acc.nulls))
        elif c.null_rate is not None and rate - c.null_rate > contract.null_rate_jump:
            out.append(
                Violation(
                    c.name,
                    "null_rate",
                    f"{c.null_rate:.1%} (+{contract.null_rate_jump:.0%} allowed)",
                    f"{rate:.1%}" + (f" ({acc.nans} NaN)" if acc.nans else ""),
                    acc.nulls,
                )
            )
    return out
