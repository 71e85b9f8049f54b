"""Fairness check: per-group rates and disparities for every sensitive attribute and intersection."""

from __future__ import annotations

from typing import Any, ClassVar

from bastion.errors import ConfigError
from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.fairness import compute_fairness
from bastion.gates.policy import FairnessSpec

__all__ = ["FairnessCheck"]


class FairnessCheck(Check):
    """Every threshold must hold for every grouping (differences at most, ratios at least)."""

    name: ClassVar[str] = "fairness"
    spec_model: ClassVar[type[FairnessSpec]] = FairnessSpec

    def run(self, context: CheckContext) -> CheckResult:
        spec = context.spec(self.name)
        assert isinstance(spec, FairnessSpec)
        if context.task != "classification":
            raise ConfigError(
                f"{context.policy.where('checks', 'fairness')}: the fairness check needs a binary classifier; "
                f"this model is a {context.task} model."
            )
        policy = context.policy
        report = compute_fairness(
            context.y_true,
            context.y_pred,
            context.data[policy.sensitive_attributes],
            groupings=policy.groupings(),
            min_group_size=policy.min_group_size,
        )
        thresholds = {k: v for k, v in spec.thresholds.model_dump().items() if v is not None}
        measured: dict[str, Any] = {}
        failed: list[str] = []
        for g in report.groupings:
            disp = g.disparities if spec.small_groups == "include" else (g.disparities_large or g.disparities)
            for metric, bound in thresholds.items():
                value = disp.get(metric)
                key = f"{g.name}: {metric}"
                measured[key] = value
                ok = value is not None and value == value and (
                    value <= bound if "difference" in metric else value >= bound
                )
                if not ok:
                    failed.append(key)
        threshold = {
            f"{g.name}: {m}": (f"<= {b}" if "difference" in m else f">= {b}")
            for g in report.groupings
            for m, b in thresholds.items()
        }
        evidence = {"failed": failed, "small_groups_policy": spec.small_groups, **report.to_dict()}
        return CheckResult(self.name, measured, threshold, not failed, spec.required, evidence)
