"""Vulnerabilities check: no unignored advisory above ``max_severity`` matches the version's recorded
environment (advisories imported with ``bastion vulns import``; matching in ``bastion.vulns``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from bastion.errors import BastionError
from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.vulns.policy import VulnerabilitiesSpec, violations

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["VulnerabilitiesCheck", "evaluate"]


def evaluate(
    project: ProjectHandle, ref: str, spec: VulnerabilitiesSpec
) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """``(passed, measured, evidence)`` for ``ref`` now; an environment that cannot be checked fails."""
    from bastion.vulns.check import check_versions

    try:
        report = check_versions(project, ref, store=False)
    except BastionError as e:
        return False, {"checked": False}, {"error": str(e)}
    v = report.versions[0]
    bad, ignored = violations(v.matches, spec)
    measured = {"violations": len(bad), "matches": len(v.matches), "ignored": len(ignored),
                "advisories_known": report.advisories}
    evidence: dict[str, Any] = {
        "violations": [m.to_dict() for m in bad],
        "ignored": ignored,
        "checked_at": report.checked_at,
    }
    if v.error:
        evidence["error"] = v.error
    return not bad and not v.error, measured, evidence


class VulnerabilitiesCheck(Check):
    """Passes when no unignored advisory above the threshold matches (unknown severity: ``unknown_severity``)."""

    name: ClassVar[str] = "vulnerabilities"
    spec_model: ClassVar[type[VulnerabilitiesSpec]] = VulnerabilitiesSpec

    def run(self, context: CheckContext) -> CheckResult:
        spec = context.spec(self.name)
        assert isinstance(spec, VulnerabilitiesSpec)
        passed, measured, evidence = evaluate(context.project, context.ref, spec)
        threshold = {"violations": 0, "max_severity": spec.max_severity}
        return CheckResult(self.name, measured, threshold, passed, spec.required, evidence,
                           error=evidence.get("error"))
