"""Gate checks: the interface, the built-in checks and the plugin registry (``bastion.checks``)."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

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
    found: dict[str, type[Check]] = {}
    for ep in entry_points(group="bastion.checks"):
        try:
            cls = ep.load()
        except Exception as e:  # a broken plugin must not hide the built-ins; the policy still fails closed
            log.warning("check plugin %s failed to load: %s", ep.name, e)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Check)):
            log.warning("check plugin %s is not a bastion Check subclass; ignored", ep.name)
            continue
        found[ep.name] = cls
    return found


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
