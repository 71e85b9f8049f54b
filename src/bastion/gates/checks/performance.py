"""Performance check: accuracy-type metrics on the holdout, optionally no worse than the aliased version."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn import metrics as skm

from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.policy import PerformanceSpec

__all__ = ["PerformanceCheck", "classification_metrics", "regression_metrics"]

_LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1, precision, recall, and ROC AUC / log-loss when scores exist."""
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
    }
    if y_score is not None and len(np.unique(y_true)) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(y_true, y_score))
        out["log_loss"] = float(skm.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1]))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
    }


def _passes(metric: str, value: float | None, bound: float) -> bool:
    if value is None or not np.isfinite(value):
        return False
    return value <= bound if metric in _LOWER_IS_BETTER else value >= bound


class PerformanceCheck(Check):
    """Thresholds on holdout metrics; ``no_worse_than`` compares with the version under an alias."""

    name: ClassVar[str] = "performance"
    spec_model: ClassVar[type[PerformanceSpec]] = PerformanceSpec

    def run(self, context: CheckContext) -> CheckResult:
        spec = context.spec(self.name)
        assert isinstance(spec, PerformanceSpec)
        if context.task == "regression":
            measured = regression_metrics(context.y_true, context.y_pred)
        else:
            measured = classification_metrics(context.y_true, context.y_pred, context.y_score)
        thresholds = {k: v for k, v in spec.thresholds.model_dump().items() if v is not None}
        failures = []
        for metric, bound in thresholds.items():
            if not _passes(metric, measured.get(metric), bound):
                failures.append(metric)
        evidence: dict[str, Any] = {"rows": len(context.y_true), "task": context.task, "failed": failures}
        if spec.no_worse_than is not None:
            cmp = self._compare(context, spec, measured)
            evidence["comparison"] = cmp
            failures += [f"{m} vs {spec.no_worse_than.alias}" for m in cmp.get("failed", [])]
            for m, drop in cmp.get("drops", {}).items():
                measured[f"{m}_drop_vs_{spec.no_worse_than.alias}"] = drop
                thresholds[f"{m}_drop_vs_{spec.no_worse_than.alias}"] = spec.no_worse_than.max_drop
        return CheckResult(self.name, measured, thresholds, not failures, spec.required, evidence)

    def _compare(self, context: CheckContext, spec: PerformanceSpec, measured: dict[str, float]) -> dict[str, Any]:
        assert spec.no_worse_than is not None
        name = context.model_version.name
        alias = spec.no_worse_than.alias
        try:
            other_ref = f"{name}@{alias}"
            other_mv = context.project.get_model(other_ref)
        except Exception:  # no version under the alias yet: nothing to be worse than
            return {"alias": alias, "current": None, "note": f"no version of {name} is under '{alias}' yet"}
        if other_mv.ref == context.ref:
            return {"alias": alias, "current": other_mv.ref, "note": "same version"}
        from bastion.gates.run import load_gate_model, predict_frame

        other_model = load_gate_model(context.project, other_mv.ref)
        y_pred, y_score = predict_frame(other_model, context.features, context.positive_label, context.task)
        other = (
            regression_metrics(context.y_true, y_pred)
            if context.task == "regression"
            else classification_metrics(context.y_true, y_pred, y_score)
        )
        drops, failed = {}, []
        for m in spec.no_worse_than.metrics:
            if m not in measured or m not in other:
                failed.append(m)
                continue
            drop = (measured[m] - other[m]) if m in _LOWER_IS_BETTER else (other[m] - measured[m])
            drops[m] = drop
            if drop > spec.no_worse_than.max_drop:
                failed.append(m)
        return {"alias": alias, "current": other_mv.ref, "current_metrics": other, "drops": drops, "failed": failed}
