"""Re-scan a stored model artifact with today's scanner and rules, after verifying its digest.

The new report is stored next to the old ones (a ``scan`` attachment carrying the scanner and rules
version); a blocking finding the previous report did not have marks the version ``finding``, which the
promotion rules and the server already refuse.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from bastion.store.schema import models

if TYPE_CHECKING:
    from bastion.project import Project

__all__ = ["FINDING_STATUS", "RescanResult", "rescan", "scanner_rules_version"]

FINDING_STATUS = "finding"
_FAIL_ON = "HIGH"  # the registry's threshold: findings at or above it block registration


def scanner_rules_version() -> dict[str, str]:
    """The scanner's version and a digest of the rules it applies today (allowlists, critical list, plugins)."""
    import bastion.scan as scan_pkg
    from bastion.scan import _engine

    h = hashlib.sha256()
    base = os.path.dirname(os.path.abspath(scan_pkg.__file__))
    files = [os.path.join(base, n) for n in ("critical.txt", "functions.txt", "_signatures.py")]
    folder = os.path.join(base, "allowlists")
    if os.path.isdir(folder):
        files += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".txt")]
    for path in files:
        if os.path.isfile(path):
            h.update(os.path.relpath(path, base).encode() + b"\0")
            with open(path, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    for plugin in _engine.plugin_scanners():
        kind = type(plugin)
        h.update(f"plugin:{kind.__module__}.{kind.__qualname__}:{getattr(plugin, 'version', '')}\0".encode())
    return {"scanner_version": str(getattr(_engine, "_VERSION", "")), "rules_version": "sha256:" + h.hexdigest()[:16]}


@dataclass(frozen=True)
class RescanResult:
    """The new report, what it found that the previous one did not, and where it was stored."""

    ref: str
    digest: str
    status: str
    new_findings: tuple[dict[str, Any], ...]
    report_digest: str
    previous_digest: str | None
    scanner_version: str
    rules_version: str
    previous_rules_version: str | None
    findings: int
    alerts: tuple[Any, ...] = ()
    rollbacks: tuple[dict[str, Any], ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """1 while the artifact has a blocking finding nobody allowed (new or found by an earlier re-scan)."""
        return 1 if self.new_findings or self.status == FINDING_STATUS else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "kind": "rescan",
            "model": self.ref,
            "artifact_digest": self.digest,
            "status": self.status,
            "new_findings": list(self.new_findings),
            "findings": self.findings,
            "report_digest": self.report_digest,
            "previous_report_digest": self.previous_digest,
            "scanner_version": self.scanner_version,
            "rules_version": self.rules_version,
            "previous_rules_version": self.previous_rules_version,
            "alerts": [a.to_dict() for a in self.alerts],
            "rollbacks": list(self.rollbacks),
        }


def _key(f: dict[str, Any]) -> tuple[str, str]:
    return str(f.get("rule_id")), str(f.get("construct"))


def rescan(project: Project, ref: str) -> RescanResult:
    """Verify ``ref``'s artifact against its stored digest, scan it again and store the report.

    Raises
    ------
    IntegrityError
        The stored artifact no longer matches its digest (nothing is scanned or stored).
    """
    from bastion.registry._attachments import insert_doc
    from bastion.registry._common import now_iso
    from bastion.scan import Severity, scan_path

    mv = project.get_model(ref)
    previous_docs = project.attachments(mv.ref, "scan")
    previous = previous_docs[-1] if previous_docs else None
    versions = scanner_rules_version()
    with project.tempdir() as tmp:
        # materializing re-hashes every byte against the registered digest (IntegrityError otherwise)
        path = project.model_path(mv.ref, Path(tmp) / mv.artifact_name)
        report = scan_path(path, digest=False)
    # Paths in the report are those of the temporary copy: name them relative to the artifact.
    prefix = str(path)

    def rel(text: str) -> str:
        return mv.artifact_name + text[len(prefix):] if text.startswith(prefix) else text

    doc: dict[str, Any] = report.to_dict()
    doc["target"] = mv.artifact_name
    for item in [*(doc.get("findings") or []), *(doc.get("files") or []), *(doc.get("errors") or [])]:
        for k in ("file", "path"):
            if isinstance(item.get(k), str):
                item[k] = rel(item[k])
    blocking = [
        {**f.to_dict(), "file": rel(f.file)} for f in report.findings if f.severity >= Severity[_FAIL_ON]
    ]
    allowed = dict((previous or {}).get("allowed_findings") or {})
    before = {_key(f) for f in (previous or {}).get("findings") or []}
    unallowed = [
        f for f in blocking
        if f.get("rule_id") not in allowed and f"{f.get('rule_id')}:{f.get('construct')}" not in allowed
    ]
    new = [f for f in unallowed if _key(f) not in before]
    # known but never allowed (found by an earlier re-scan) stays a finding; allowed ones stay "allowed"
    status = FINDING_STATUS if unallowed else ("clean" if not blocking else "allowed")
    max_sev = report.max_severity
    doc.update({
        "status": status,
        "clean": not blocking,
        "max_severity": max_sev.name if max_sev is not None else None,
        "allowed_findings": allowed,
        "rescan": {
            "at": now_iso(),
            "artifact_digest": mv.digest,
            "digest_verified": True,
            "previous_report": (previous or {}).get("rescan", {}).get("at") if previous else None,
            "new_findings": new,
            **versions,
        },
    })
    prev_digest = None
    if previous_docs:
        import json

        prev_digest = "sha256:" + hashlib.sha256(
            json.dumps(previous, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
    with project.transaction() as conn:
        digest = insert_doc(project, conn, "model", mv.name, mv.version, "scan", doc)  # audited: model.attach.scan
        if status == FINDING_STATUS or mv.scan_status == FINDING_STATUS:
            # the registry's scan status follows: the server and promotion refuse a version with a finding
            conn.execute(update(models).where(models.c.name == mv.name, models.c.version == mv.version)
                         .values(scan_status=status))
        project.record(conn, "model.rescan", mv.ref, {
            "report": digest, "previous_report": prev_digest, "artifact_digest": mv.digest, "status": status,
            "previous_status": mv.scan_status,
            "new_findings": [f"{f.get('rule_id')}:{f.get('construct')}" for f in new][:50], **versions,
        })
    # a re-scan report keeps its versions under "rescan"; the registration report at the top level
    prev_rules = ((previous or {}).get("rescan") or {}).get("rules_version") or (previous or {}).get("rules_version")
    return RescanResult(
        ref=mv.ref, digest=mv.digest, status=status, new_findings=tuple(new), report_digest=digest,
        previous_digest=prev_digest, scanner_version=versions["scanner_version"],
        rules_version=versions["rules_version"], previous_rules_version=prev_rules,
        findings=len(doc.get("findings") or []),
    )
