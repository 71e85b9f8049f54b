"""The ``checks: vulnerabilities:`` section of ``bastion-policy.yaml`` and which matches violate it.

An advisory violates the policy when its severity is above ``max_severity`` and it is not ignored;
an advisory without a severity counts as ``unknown_severity`` (critical unless the policy says otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bastion.gates.policy import CheckSpec
from bastion.vulns.osv import severity_rank

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle
    from bastion.vulns.check import Match

__all__ = ["IgnoredAdvisory", "VulnerabilitiesSpec", "project_vuln_spec", "rollback_triggers", "violations"]

Level = Literal["none", "low", "medium", "high", "critical"]
_ADVISORY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,199}")


class IgnoredAdvisory(BaseModel):
    """One advisory the operator accepts, and why (the reason is recorded with every gate run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    reason: Annotated[str, Field(min_length=1)]
    package: str | None = None  # only for this package (default: wherever it matches)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ADVISORY_ID.fullmatch(v):
            raise ValueError(f"an advisory id (e.g. GHSA-xxxx-xxxx-xxxx or CVE-2024-1234) is expected; got {v!r}")
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("each ignored advisory needs a non-empty reason")
        return v


class VulnerabilitiesSpec(CheckSpec):
    """No unignored advisory above ``max_severity`` may match the version's recorded environment."""

    max_severity: Level = "none"
    unknown_severity: Level = "critical"
    ignore: list[IgnoredAdvisory] = Field(default_factory=list)

    @field_validator("ignore", mode="before")
    @classmethod
    def _plain_ids(cls, v: Any) -> Any:
        if isinstance(v, list):
            for item in v:
                if isinstance(item, str):
                    raise ValueError(
                        f"ignore entries need a reason: write '- {{id: {item}, reason: \"why it does not apply\"}}'"
                    )
        return v


def _ignored(m: Match, spec: VulnerabilitiesSpec) -> IgnoredAdvisory | None:
    names = {m.id, *m.aliases}
    for ig in spec.ignore:
        if ig.id in names and (ig.package is None or ig.package.lower() == m.package):
            return ig
    return None


def violations(matches: Iterable[Match], spec: VulnerabilitiesSpec) -> tuple[list[Match], list[dict[str, str]]]:
    """(matches that violate ``spec``, ignored matches with their reasons)."""
    limit = severity_rank(spec.max_severity)
    bad: list[Match] = []
    ignored: list[dict[str, str]] = []
    for m in matches:
        ig = _ignored(m, spec)
        if ig is not None:
            ignored.append({"id": m.id, "package": m.package, "reason": ig.reason})
        elif severity_rank(m.severity, unknown_as=spec.unknown_severity) > limit:
            bad.append(m)
    return bad, ignored


def project_vuln_spec(project: ProjectHandle) -> tuple[VulnerabilitiesSpec, Any]:
    """The project policy's vulnerabilities settings (defaults when absent) and the policy (or None)."""
    from bastion.gates.policy import find_project_policy, load_policy

    path = find_project_policy(project)
    if path is None:
        return VulnerabilitiesSpec(), None
    policy = load_policy(path)
    spec = VulnerabilitiesSpec.model_validate(policy.checks.get("vulnerabilities") or {})
    return spec, policy


def rollback_triggers(policy: Any, alias: str) -> set[str]:
    """What rolls ``alias`` back under the policy: ``vulnerability`` and/or ``rescan_finding``."""
    if policy is None:
        return set()
    rule = policy.aliases.get(alias)
    return set(getattr(rule, "rollback_on", None) or ()) if rule is not None else set()

