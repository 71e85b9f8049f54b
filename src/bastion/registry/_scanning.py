"""The registry's use of the artifact scanner: scan before storing, refuse unless clean or each
finding is explicitly allowed with a reason (audited), and keep the report with the version.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bastion.errors import UnsafeArtifactError

if TYPE_CHECKING:
    from bastion.audit.log import AuditEntry
    from bastion.project import Project
    from bastion.protocols import ProjectHandle
    from bastion.registry.records import ModelVersion

FAIL_ON = "HIGH"
#: Scanner rules whose construct is a global the restricted unpickler must import to load the file.
GLOBAL_RULES = ("pickle.unknown-callable", "pickle.unknown-global")


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
            # exactly the globals of allowed findings: what the restricted unpickler may import at load time
            "allowed_globals": sorted(
                {f.construct for f in blocking if f.rule_id in GLOBAL_RULES and _is_global(f.construct)}),
            # the rules this report was made with: the first `model rescan` names what changed since
            **scanner_rules_version(),
        }
    )
    return doc


def _is_global(construct: str | None) -> bool:
    """A construct the restricted loader may be told to import: a dotted name off the critical list."""
    from bastion.scan.restricted import allowable

    return isinstance(construct, str) and allowable(construct)


def audited_allowed_globals(project: ProjectHandle, mv: ModelVersion) -> tuple[str, ...]:
    """The globals an operator allowed when ``mv`` was registered, read from its audited registration record.

    The database's scan status and scan document are caches: the allowance comes from the ``model.register``
    audit entry only, which must hash correctly, link to the entry after it, name this artifact's digest and
    be covered by a signed audit checkpoint when the project has an audit key. Critical names (code execution,
    system access) are refused even when the record lists them.

    Raises
    ------
    UnsafeArtifactError
        The record is missing, altered, unanchored, or lists a name that can never be allowed.
    """
    from bastion.audit.checkpoints import anchor
    from bastion.audit.log import canonical, entry_hash

    where = f"Model {mv.ref} was registered with allowed scanner findings, but"
    newest: AuditEntry | None = project.audit.newest(("model.register",), subject=mv.ref)
    if newest is None:
        raise UnsafeArtifactError(f"{where} the audit log has no registration record for it; nothing was loaded. "
                                  "Run `bastion audit verify`.")
    entry = newest
    if project.audit.newest(("model.register",), subject=mv.ref, match=lambda e: e.seq != entry.seq) is not None:
        raise UnsafeArtifactError(f"{where} the audit log holds more than one registration record for it; nothing "
                                  "was loaded. Run `bastion audit verify`.")
    if entry_hash(entry.seq, entry.ts, entry.actor, entry.action, entry.subject, canonical(entry.details).decode(),
                  entry.prev_hash) != entry.hash:
        raise UnsafeArtifactError(f"{where} its registration record (audit entry {entry.seq}) was altered; nothing "
                                  "was loaded. Run `bastion audit verify`.")
    following = project.audit.range(entry.seq + 1, entry.seq + 1)
    if following and following[0].prev_hash != entry.hash:
        raise UnsafeArtifactError(f"{where} the audit chain breaks after its registration record (entry {entry.seq}); "
                                  "nothing was loaded. Run `bastion audit verify`.")
    details = entry.details
    if details.get("digest") != mv.digest or details.get("scan") != "allowed":
        raise UnsafeArtifactError(f"{where} its audited registration record says scan '{details.get('scan')}' for "
                                  f"artifact {details.get('digest')}; the registry row was edited. Nothing was loaded.")
    ok, why = anchor(project, entry, vouched=True)
    if not ok:
        raise UnsafeArtifactError(f"{where} its registration record is not proven by the audit chain: {why}. "
                                  "Nothing was loaded.")
    names = details.get("allowed_globals")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UnsafeArtifactError(f"{where} its registration record names no allowed globals (it predates "
                                  "load-time allowances); re-register the file with --allow-finding. Nothing was "
                                  "loaded.")
    from bastion.scan.restricted import allowable

    bad = [n for n in names if not allowable(n)]
    if bad:
        raise UnsafeArtifactError(f"{where} its registration record lists {', '.join(sorted(bad))}, which gives code "
                                  "execution or system access and can never be allowed. Nothing was loaded.")
    return tuple(sorted(names))


def attach_in(
    project: Project, conn: Connection, name: str, version: int, doc: dict[str, Any], *, audit: bool = True
) -> str:
    """Store the scan report with the version; returns its digest."""
    from bastion.registry._attachments import insert_doc

    return insert_doc(project, conn, "model", name, version, "scan", doc, audit=audit)
