"""Deployment gates: policy as code, checks, signed gate attestations and promotion rules.

The names below load on first use (PEP 562), so importing one light submodule such as
``bastion.gates.policy`` (the ``vulns`` commands read a policy) does not import pandas and the checks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.gates.checks.interface import Check, CheckContext, CheckResult
    from bastion.gates.fairness import FairnessReport, compute_fairness
    from bastion.gates.policy import Policy, load_policy
    from bastion.gates.promotion import PromotionDecision, check_promotion
    from bastion.gates.run import GateResult, run_gate

_WHERE = {
    "Check": "bastion.gates.checks.interface",
    "CheckContext": "bastion.gates.checks.interface",
    "CheckResult": "bastion.gates.checks.interface",
    "FairnessReport": "bastion.gates.fairness",
    "compute_fairness": "bastion.gates.fairness",
    "Policy": "bastion.gates.policy",
    "load_policy": "bastion.gates.policy",
    "PromotionDecision": "bastion.gates.promotion",
    "check_promotion": "bastion.gates.promotion",
    "GateResult": "bastion.gates.run",
    "run_gate": "bastion.gates.run",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bastion.gates' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
