"""What happens when a served version turns out affected or a re-scan finds something new: alerts
through the monitoring alert sinks, and (when the alias policy says so) a rollback of the alias to the
newest version it held that is still clean and not affected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import BastionError
from bastion.vulns.osv import severity_rank

if TYPE_CHECKING:
    from bastion.monitor.alerts import Alert
    from bastion.project import Project
    from bastion.vulns.check import VulnReport
    from bastion.vulns.policy import VulnerabilitiesSpec
    from bastion.vulns.rescan import RescanResult

__all__ = ["Response", "rescan_alerts", "respond", "safe_rollback", "vulnerability_alerts"]

log = logging.getLogger("bastion.vulns")

Response = dict[str, Any]


def _describe(m: Any) -> str:
    ids = ", ".join([m.id, *[a for a in m.aliases if a != m.id]][:3])
    fixed = f"; fixed in {m.fixed}" if m.fixed else "; no fixed version known"
    return f"{m.package} {m.installed} is affected by {ids} (severity {m.severity}{fixed})"


def vulnerability_alerts(report: VulnReport) -> list[Alert]:
    """One alert per served version with advisories it did not match before."""
    alerts: list[Alert] = []
    if not any(v.new and v.aliases for v in report.versions):
        return alerts  # the common case: nothing new, and no need to load the alerting machinery
    from bastion.monitor.alerts import Alert

    for v in report.versions:
        if not v.new or not v.aliases:
            continue
        worst = max(v.new, key=lambda m: severity_rank(m.severity)).severity
        served = ", ".join(f"{v.name}@{a}" for a in v.aliases)
        alerts.append(Alert(
            rule="vulnerability", signal="vulnerability",
            severity="critical" if severity_rank(worst) >= severity_rank("high") else "warning",
            model=v.ref,
            message=f"{v.ref} ({served}): " + "; ".join(_describe(m) for m in v.new[:5])
            + (f" (and {len(v.new) - 5} more)" if len(v.new) > 5 else ""),
            details={"aliases": list(v.aliases), "advisories": [m.to_dict() for m in v.new]},
        ))
    return alerts


def rescan_alerts(result: RescanResult, served: Iterable[str] = ()) -> list[Alert]:
    """A critical alert when a re-scan found what the previous scan of the artifact did not."""
    if not result.new_findings:
        return []
    from bastion.monitor.alerts import Alert

    names = ", ".join(f"{f.get('rule_id')}:{f.get('construct')}" for f in result.new_findings[:5])
    return [Alert(
        rule="rescan-finding", signal="rescan", severity="critical", model=result.ref,
        message=f"Re-scan of {result.ref} with scanner rules {result.rules_version} found "
        f"{len(result.new_findings)} new finding(s): {names}",
        details={"aliases": list(served), "new_findings": list(result.new_findings),
                 "rules_version": result.rules_version, "report": result.report_digest},
    )]


def _is_safe(project: Project, name: str, version: int, spec: VulnerabilitiesSpec) -> tuple[bool, str]:
    from bastion.vulns.check import check_versions
    from bastion.vulns.policy import violations
    from bastion.vulns.rescan import FINDING_STATUS

    ref = f"{name}:{version}"
    try:
        mv = project.get_model(ref)
    except BastionError:
        return False, "deleted"
    scans = project.attachments(ref, "scan")
    if mv.scan_status == FINDING_STATUS or not scans or not scans[-1].get("clean"):
        return False, "its last scan is not clean"
    v = check_versions(project, ref).versions[0]
    if v.error:
        return False, v.error
    bad, _ = violations(v.matches, spec)
    if bad:
        return False, f"affected by {', '.join(sorted({m.id for m in bad})[:3])}"
    return True, ""


def safe_rollback(project: Project, name: str, alias: str, *, reason: str,
                  spec: VulnerabilitiesSpec | None = None) -> dict[str, Any]:
    """Roll ``name@alias`` back, one audited step at a time, to the newest version below it in the alias's
    history that is clean and not affected; nothing moves when there is none."""
    from bastion.vulns.policy import VulnerabilitiesSpec

    spec = spec or VulnerabilitiesSpec()
    history = [h for h in project.alias_history(name, alias) if h["active"]]
    if len(history) < 2:
        return {"model": name, "alias": alias, "rolled_back": False,
                "reason": "the alias has no earlier version to roll back to"}
    current = int(history[-1]["version"])
    below = [int(h["version"]) for h in history[:-1]]
    skipped: dict[int, str] = {}
    target = None
    for version in sorted(set(below) - {current}, reverse=True):
        ok, why = _is_safe(project, name, version, spec)
        if ok:
            target = version
            break
        skipped[version] = why
    if target is None:
        log.warning("no clean, unaffected earlier version of %s@%s; alias left at %s", name, alias, current)
        return {"model": name, "alias": alias, "rolled_back": False, "from_version": current,
                "reason": "no earlier version of the alias is clean and unaffected", "skipped": skipped}
    moved = current
    while moved != target:
        moved = project.rollback(name, alias=alias, reason=reason).version
    project.audited("vulns.rollback", f"{name}@{alias}", {
        "from": current, "to": target, "reason": reason, "skipped": {str(k): v for k, v in skipped.items()}})
    return {"model": name, "alias": alias, "rolled_back": True, "from_version": current, "to_version": target,
            "skipped": skipped}


def _vulnerability_rollbacks(report: VulnReport, spec: VulnerabilitiesSpec, policy: Any) -> dict[tuple[str, str], str]:
    """(model, alias) -> reason, for aliases whose policy rolls back on an advisory now violating ``spec``."""
    from bastion.vulns.policy import rollback_triggers, violations

    out: dict[tuple[str, str], str] = {}
    for v in report.versions:
        bad, _ = violations(v.new, spec)
        for alias in v.aliases:
            if bad and "vulnerability" in rollback_triggers(policy, alias):
                out.setdefault((v.name, alias), f"advisories {', '.join(sorted({m.id for m in bad})[:5])} "
                                                f"affect {v.ref}")
    return out


def respond(
    project: Project,
    *,
    report: VulnReport | None = None,
    rescans: Iterable[tuple[RescanResult, tuple[str, ...]]] = (),
    config: Any = None,
    dispatch: bool = True,
    extra_alerts: Iterable[Alert] = (),
) -> Response:
    """Alert on new matches of served versions and on new re-scan findings; roll back where the policy says.

    ``config`` is the monitoring config (alert log and sinks); default: the project policy's.
    """
    from bastion.policy_file import POLICY_FILE

    spec: VulnerabilitiesSpec | None = None
    policy: Any = None
    if (Path(project.settings.root) / POLICY_FILE).is_file():  # no policy: no rollback rules, nothing to load
        from bastion.vulns.policy import project_vuln_spec

        spec, policy = project_vuln_spec(project)
    alerts: list[Alert] = list(extra_alerts)
    rollbacks: list[dict[str, Any]] = []
    to_roll: dict[tuple[str, str], str] = {}
    if report is not None:
        alerts += vulnerability_alerts(report)
        if spec is not None:
            to_roll.update(_vulnerability_rollbacks(report, spec, policy))
    for result, served in rescans:
        alerts += rescan_alerts(result, served)
        if result.new_findings and policy is not None:
            from bastion.vulns.policy import rollback_triggers

            name = result.ref.split(":", 1)[0]
            for alias in served:
                if "rescan_finding" in rollback_triggers(policy, alias):
                    to_roll.setdefault((name, alias), f"re-scan of {result.ref} found new findings")
    deliveries: list[Any] = []
    if dispatch and alerts:
        from bastion.monitor.alerts import deliver
        from bastion.monitor.runner import alert_log_path

        if config is None:
            from bastion.gates.policy import find_project_policy
            from bastion.monitor.config import load_monitoring_config

            config = load_monitoring_config(find_project_policy(project))
        deliveries = deliver(alerts, config.alerts, db=project.db, log_path=alert_log_path(project, config),
                             root=project.root)
    if dispatch:
        for (name, alias), reason in sorted(to_roll.items()):
            rollbacks.append(safe_rollback(project, name, alias, reason=reason, spec=spec))
    return {"alerts": alerts, "deliveries": deliveries, "rollbacks": rollbacks}
