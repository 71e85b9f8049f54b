"""The drift-test seam: the abstract ``DriftTest`` and the frozen results every test returns.

A test compares one column of the reference data with the same column of the current window.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

__all__ = ["ColumnKind", "DriftTest", "FeatureDrift", "TestResult", "VerdictBasis"]

ColumnKind = Literal["numeric", "categorical"]
VerdictBasis = Literal["effect", "p_value"]


@dataclass(frozen=True)
class TestResult:
    """One statistic for one column.

    ``p_value`` is set for hypothesis tests (KS, chi-square), ``None`` for pure effect sizes
    (Wasserstein, Jensen-Shannon, PSI). ``basis`` says how ``threshold`` is applied.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str
    statistic: float
    p_value: float | None = None
    basis: VerdictBasis = "effect"
    details: dict[str, Any] = field(default_factory=dict)

    def exceeds(self, threshold: float, *, p_value: float | None = None) -> bool:
        """True when this result means drift at ``threshold``.

        Effect sizes drift when ``statistic > threshold``; tests when the (adjusted) p-value
        is below ``threshold``. A statistic or p-value that is NaN (a comparison that did not
        compute) counts as drift: monitoring fails closed, never open.
        """
        if self.basis == "p_value":
            p = self.p_value if p_value is None else p_value
            return p is not None and not bool(p >= threshold)
        return not bool(self.statistic <= threshold)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable_dict(asdict(self))


@dataclass(frozen=True)
class FeatureDrift:
    """Drift verdict of one column: every statistic computed, the one the verdict used, and why."""

    column: str
    kind: ColumnKind
    n_reference: int
    n_current: int
    tests: dict[str, TestResult]
    verdict_test: str
    threshold: float
    drifted: bool
    p_value: float | None = None
    p_value_adjusted: float | None = None
    missing_reference: float = 0.0
    missing_current: float = 0.0
    new_categories: tuple[str, ...] = ()
    unseen_categories: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    prediction: bool = False
    note: str = ""
    histogram: dict[str, Any] = field(default_factory=dict)

    @property
    def missing_change(self) -> float:
        return self.missing_current - self.missing_reference

    def to_dict(self) -> dict[str, Any]:
        d = {
            "column": self.column,
            "kind": self.kind,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "tests": {k: v.to_dict() for k, v in self.tests.items()},
            "verdict_test": self.verdict_test,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "missing_reference": self.missing_reference,
            "missing_current": self.missing_current,
            "missing_change": self.missing_change,
            "new_categories": list(self.new_categories),
            "unseen_categories": list(self.unseen_categories),
            "reasons": list(self.reasons),
            "prediction": self.prediction,
            "note": self.note,
            "histogram": self.histogram,
        }
        return _jsonable_dict(d)


class DriftTest(ABC):
    """A drift statistic for one column kind.

    Subclasses set ``name``, ``kind``, ``basis`` and ``default_threshold`` and implement
    :meth:`compute` on two 1-D arrays with missing values already removed.
    """

    name: ClassVar[str]
    kind: ClassVar[ColumnKind]
    basis: ClassVar[VerdictBasis]
    default_threshold: ClassVar[float]

    @abstractmethod
    def compute(self, reference: np.ndarray, current: np.ndarray) -> TestResult:
        """Compare ``reference`` with ``current`` (both non-empty, no missing values)."""


def _jsonable_dict(obj: dict[str, Any]) -> dict[str, Any]:
    """``_jsonable`` for a mapping (typed)."""
    out: dict[str, Any] = _jsonable(obj)
    return out


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
