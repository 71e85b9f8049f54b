"""Deployment gates: policy as code, checks, signed gate attestations and promotion rules."""

from __future__ import annotations

from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.fairness import FairnessReport, compute_fairness
from bastion.gates.policy import Policy, load_policy
from bastion.gates.promotion import PromotionDecision, check_promotion
from bastion.gates.run import GateResult, run_gate

__all__ = [
    "Check",
    "CheckContext",
    "CheckResult",
    "FairnessReport",
    "GateResult",
    "Policy",
    "PromotionDecision",
    "check_promotion",
    "compute_fairness",
    "load_policy",
    "run_gate",
]
