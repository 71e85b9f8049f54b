"""Promotion rules: may this model version take this alias now? A thin view of :func:`bastion.trust.evaluate`.

Kept for callers of ``check_promotion``; the decision itself is made once, by the trust evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle
    from bastion.registry.records import ModelVersion

__all__ = ["PromotionDecision", "check_promotion"]


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the promotion may go ahead, why not, and the evidence the audit entry records."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reasons": list(self.reasons), "evidence": self.evidence}


def check_promotion(project: ProjectHandle, model_version: ModelVersion | str, alias: str) -> PromotionDecision:
    """Decide whether ``model_version`` may take ``alias`` under the project's policy.

    With no policy file, or a policy with no rule for ``alias``, the promotion is allowed.
    A broken policy file refuses the promotion (fail closed) rather than allowing it.
    """
    from bastion.trust import evaluate

    report = evaluate(project, model_version, alias, purpose="promote")
    reasons = tuple(e.detail for e in report.checks.values() if not e.ok)
    return PromotionDecision(report.ok, reasons, report.evidence())
