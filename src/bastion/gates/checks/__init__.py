"""Gate checks: the interface, the built-in checks and the plugin registry (``bastion.checks``)."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from bastion._plugins import plugin_classes
from bastion.errors import ConfigError
from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.policy import CheckSpec

__all__ = ["Check", "CheckContext", "CheckResult", "available_checks", "get_check", "spec_model_for"]

log = logging.getLogger("bastion.gates")


def _builtins() -> dict[str, type[Check]]:
    from bastion.gates.checks.diversity import DiversityCheck
    from bastion.gates.checks.fairness import FairnessCheck
    from bastion.gates.checks.performance import PerformanceCheck
    from bastion.gates.checks.privacy import PrivacyCheck
    from bastion.gates.checks.robustness import RobustnessCheck
    from bastion.gates.checks.supply_chain import SupplyChainCheck
    from bastion.gates.checks.vulnerabilities import VulnerabilitiesCheck

    classes: list[type[Check]] = [
        PerformanceCheck, FairnessCheck, DiversityCheck, RobustnessCheck, PrivacyCheck, SupplyChainCheck,
        VulnerabilitiesCheck,
    ]
    return {c.name: c for c in classes}


@cache
def _plugins() -> dict[str, type[Check]]:
    return plugin_classes(entry_points(group="bastion.checks"), Check, "check", log)


def available_checks() -> dict[str, type[Check]]:
    """Every check name a policy may use: built-ins, then plugins (built-ins win on a name clash)."""
    return {**_plugins(), **_builtins()}


def get_check(name: str) -> Check:
    """An instance of the check called ``name``."""
    checks = available_checks()
    if name not in checks:
        raise ConfigError(f"Unknown check '{name}'. Known checks: {', '.join(sorted(checks))}.")
    return checks[name]()


def spec_model_for(name: str) -> type[CheckSpec]:
    """The settings model of check ``name``."""
    checks = available_checks()
    if name not in checks:
        raise ConfigError(f"Unknown check '{name}'. Known checks: {', '.join(sorted(checks))}.")
    return checks[name].spec_model
