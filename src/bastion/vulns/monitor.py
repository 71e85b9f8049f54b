"""Vulnerability monitoring on a schedule (``bastion monitor run``): re-check advisories and re-scan the
served versions of a model when due (default: daily), alert and roll back as the policy says.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.project import Project

__all__ = ["DEFAULT_EVERY", "is_due", "monitor_vulnerabilities"]

DEFAULT_EVERY = timedelta(days=1)


def _state_path(project: Project, name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Path(project.settings.home_path) / "monitor" / f"vulns-{safe}.json"


def is_due(project: Project, name: str, every: timedelta, *, now: datetime | None = None) -> bool:
    """True when the last vulnerability pass for ``name`` is older than ``every`` (or there was none)."""
    path = _state_path(project, name)
    try:
        last = datetime.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["last_run"])
    except (OSError, ValueError, KeyError, TypeError):
        return True  # no (readable) record of a pass: run one
    return (now or datetime.now(UTC)) - last >= every


def _mark(project: Project, name: str, at: datetime) -> None:
    path = _state_path(project, name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"schema_version": 1, "last_run": at.isoformat()}, fh)
    os.replace(tmp, path)


def monitor_vulnerabilities(
    project: Project, name: str, *, config: Any = None, rescan: bool = True, now: datetime | None = None
) -> dict[str, Any]:
    """One pass over the served versions of model ``name``: advisory check, re-scans, alerts, rollbacks.

    Returns a JSON-ready summary with ``exit_code`` 1 when a served version is affected or a re-scan
    found something new.
    """
    from bastion.vulns.check import check_versions
    from bastion.vulns.rescan import rescan as run_rescan
    from bastion.vulns.respond import respond

    at = now or datetime.now(UTC)
    report = check_versions(project, name=name)
    rescans = []
    errors: list[str] = []
    if rescan:
        for v in report.versions:
            try:
                rescans.append((run_rescan(project, v.ref), v.aliases))
            except BastionError as e:  # a digest mismatch is itself a finding the operator must see
                errors.append(f"{v.ref}: {e.message}")
    from bastion.monitor.alerts import Alert

    failed = [Alert(rule="rescan-failed", signal="rescan", severity="critical", model=name,
                    message=f"Re-scan refused: {err}", details={}) for err in errors]
    response = respond(project, report=report, rescans=rescans, config=config, extra_alerts=failed)
    _mark(project, name, at)
    new_findings = [r for r, _ in rescans if r.new_findings]
    return {
        "schema_version": 1,
        "kind": "vulnerability_monitor",
        "model": name,
        "at": at.isoformat(),
        "check": report.to_dict(),
        "rescans": [r.to_dict() for r, _ in rescans],
        "errors": errors,
        "alerts": [a.to_dict() for a in response["alerts"]],
        "rollbacks": response["rollbacks"],
        "exit_code": 1 if report.exit_code or new_findings or errors else 0,
    }
