"""Training-data diversity: share of each sensitive group in the training dataset version (from lineage)."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.policy import DiversitySpec

__all__ = ["DiversityCheck", "group_shares"]


def group_shares(train: pd.DataFrame, attribute: str) -> dict[str, float]:
    """Share of rows per value of ``attribute`` (missing values counted as '(missing)')."""
    counts = train[attribute].astype("object").where(train[attribute].notna(), "(missing)").astype(str).value_counts()
    total = float(counts.sum())
    return {str(k): float(v) / total for k, v in counts.sort_index().items()} if total else {}


class DiversityCheck(Check):
    """Minimum share, maximum imbalance ratio, and no missing declared groups, per attribute."""

    name: ClassVar[str] = "diversity"
    spec_model: ClassVar[type[DiversitySpec]] = DiversitySpec

    def run(self, context: CheckContext) -> CheckResult:
        spec = context.spec(self.name)
        assert isinstance(spec, DiversitySpec)
        train = context.train_data
        if train is None:
            return CheckResult(
                self.name, {}, {}, False, spec.required,
                {"reason": "the model version records no training dataset in its lineage"},
                error="no training data: log the model with datasets=[...] or pass train_data",
            )
        measured: dict[str, Any] = {}
        threshold: dict[str, Any] = {"min_share": spec.min_share}
        if spec.max_imbalance_ratio is not None:
            threshold["max_imbalance_ratio"] = spec.max_imbalance_ratio
        failed: list[str] = []
        evidence: dict[str, Any] = {"rows": len(train), "shares": {}, "missing_groups": {}, "failed": failed}
        for attr in context.policy.sensitive_attributes:
            if attr not in train.columns:
                failed.append(f"{attr}: not a column of the training data")
                continue
            shares = group_shares(train, attr)
            evidence["shares"][attr] = shares
            lo = min(shares.values()) if shares else 0.0
            hi = max(shares.values()) if shares else 0.0
            measured[f"{attr}: min_share"] = lo
            ratio = hi / lo if lo > 0 else float("inf")
            measured[f"{attr}: imbalance_ratio"] = ratio
            if lo < spec.min_share:
                failed.append(f"{attr}: min_share")
            if spec.max_imbalance_ratio is not None and ratio > spec.max_imbalance_ratio:
                failed.append(f"{attr}: imbalance_ratio")
            expected = spec.expected_groups.get(attr)
            if expected:
                missing = sorted(set(expected) - set(shares))
                measured[f"{attr}: missing_groups"] = len(missing)
                evidence["missing_groups"][attr] = missing
                if missing:
                    failed.append(f"{attr}: missing groups {missing}")
        return CheckResult(self.name, measured, threshold, not failed, spec.required, evidence)
