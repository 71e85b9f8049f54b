"""The one interface every gate check implements, and the frozen result it returns.

Built-in checks live beside this module; third-party checks load from the ``bastion.checks`` entry points.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from bastion.gates.policy import CheckSpec, Policy
    from bastion.protocols import ProjectHandle

__all__ = ["Check", "CheckContext", "CheckResult", "jsonable"]


def jsonable(value: Any) -> Any:
    """Plain JSON values (NaN/inf become None, numpy scalars become Python numbers)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


@dataclass(frozen=True)
class CheckResult:
    """What one check measured, against which threshold, and whether it passed.

    ``measured`` and ``threshold`` map metric names to numbers; ``evidence`` holds whatever a
    reviewer needs to trust the numbers (sample sizes, per-group tables, attack settings).
    """

    name: str
    measured: dict[str, Any]
    threshold: dict[str, Any]
    passed: bool
    required: bool = True
    evidence: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": jsonable(self.measured),
            "threshold": jsonable(self.threshold),
            "passed": bool(self.passed),
            "required": bool(self.required),
            "evidence": jsonable(self.evidence),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        return cls(
            name=d["name"],
            measured=dict(d.get("measured") or {}),
            threshold=dict(d.get("threshold") or {}),
            passed=bool(d["passed"]),
            required=bool(d.get("required", True)),
            evidence=dict(d.get("evidence") or {}),
            error=d.get("error"),
        )


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may look at; built once per gate run by ``run_gate``.

    ``y_true``/``y_pred`` are 0/1 arrays for classifiers (1 = ``positive_label``) and raw values
    for regressors; ``y_score`` is the positive-class probability when the model has one.
    """

    project: ProjectHandle
    ref: str
    model_version: Any
    model: Any
    policy: Policy
    data: pd.DataFrame
    target: str
    features: pd.DataFrame
    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray | None
    task: str
    positive_label: Any
    train_data: pd.DataFrame | None
    seed: int = 0

    def spec(self, check: str) -> CheckSpec:
        return self.policy.spec(check)


class Check(abc.ABC):
    """A gate check: ``run(context) -> CheckResult``.

    Subclasses set ``name`` (the key under ``checks:`` in the policy) and ``spec_model`` (the pydantic
    model of their settings; unknown settings are refused when the policy loads).
    """

    name: ClassVar[str]
    spec_model: ClassVar[type[CheckSpec]]

    @abc.abstractmethod
    def run(self, context: CheckContext) -> CheckResult:
        """Measure, compare with the thresholds, and return the result (never raise for a failed check)."""
