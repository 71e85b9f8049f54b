"""The registry's use of the artifact scanner: scan before storing, refuse unless clean or each
finding is explicitly allowed with a reason (audited), and keep the report with the version.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bastion.errors import UnsafeArtifactError

if TYPE_CHECKING:
    from bastion.project import Project

FAIL_ON = "HIGH"


def finding_id(f: dict[str, Any]) -> str:
    """The id a user passes to ``--allow-finding``: ``RULE`` or ``RULE:construct``."""
    return f"{f.get('rule_id')}:{f.get('construct')}"


def scan_for_register(project: Project, path: Path, *, allow_findings: dict[str, str]) -> dict[str, Any] | None:
    """Scan ``path``; return the document to store, or raise when blocking findings are not allowed."""
    if not project.settings.scan_on_register:
        return None
    from bastion.scan import Severity, scan_path

    report = scan_path(path, digest=False)  # the blob store hashes the artifact anyway
    doc: dict[str, Any] = report.to_dict()
    blocking = [f for f in report.findings if f.severity >= Severity[FAIL_ON]]
    for reason_key, reason in allow_findings.items():
        if not str(reason).strip():
            raise UnsafeArtifactError(f"Allowing finding {reason_key!r} needs a reason.")
    unallowed = []
    for f in blocking:
        fd = {"rule_id": f.rule_id, "construct": f.construct}
        if f.rule_id not in allow_findings and finding_id(fd) not in allow_findings:
            unallowed.append(f)
    if unallowed:
        lines = "; ".join(
            f"{f.severity.name} {finding_id({'rule_id': f.rule_id, 'construct': f.construct})} in "
            f"{f.file}{'!' + f.inner_path if f.inner_path else ''}: {f.message}"
            for f in unallowed[:5]
        )
        more = f" (and {len(unallowed) - 5} more)" if len(unallowed) > 5 else ""
        raise UnsafeArtifactError(
            f"Refusing to register {path.name}: the scan found {lines}{more}. Fix the artifact (save with skops), "
            "or allow each finding explicitly with --allow-finding ID --reason TEXT (audited)."
        )
    status = "clean" if not blocking else "allowed"
    max_sev = report.max_severity
    from bastion.vulns.rescan import scanner_rules_version

    doc.update(
        {
            "status": status,
            "clean": not blocking,
            "max_severity": max_sev.name if max_sev is not None else None,
            "allowed_findings": dict(allow_findings),
            # the rules this report was made with: the first `model rescan` names what changed since
            **scanner_rules_version(),
        }
    )
    return doc


def attach_in(
    project: Project, conn: Connection, name: str, version: int, doc: dict[str, Any], *, audit: bool = True
) -> str:
    """Store the scan report with the version; returns its digest."""
    from bastion.registry._attachments import insert_doc

    return insert_doc(project, conn, "model", name, version, "scan", doc, audit=audit)
