"""Per-version and per-alias vulnerability status for `model show` and the dashboard:
``clean``, ``affected`` (a stored advisory match), ``rescan-finding`` or ``unchecked``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bastion.store.schema import aliases, models, vuln_results

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["alias_statuses", "version_status"]


def _status(scan_status: str, checked: bool, matches: list[Any]) -> str:
    from bastion.vulns.rescan import FINDING_STATUS

    if scan_status == FINDING_STATUS:
        return "rescan-finding"
    if matches:
        return "affected"
    return "clean" if checked else "unchecked"


def version_status(project: ProjectHandle, name: str, version: int) -> dict[str, Any]:
    """Status, advisories and check time of one version (from the last stored check)."""
    from bastion.vulns.check import stored_results

    with project.db.read() as conn:
        row = conn.execute(select(vuln_results.c.checked_at, vuln_results.c.max_severity)
                           .where(vuln_results.c.name == name, vuln_results.c.version == version)).first()
        scan_status = conn.execute(select(models.c.scan_status).where(models.c.name == name,
                                                                      models.c.version == version)).scalar()
    matches = stored_results(project, [(name, version)]).get((name, version)) or []
    return {
        "status": _status(str(scan_status or ""), row is not None, matches),
        "checked_at": row.checked_at if row is not None else None,
        "max_severity": row.max_severity if row is not None else None,
        "advisories": [m.to_dict() for m in matches],
    }


def _brief(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):  # results stored by the first release of this module
        return {k: item.get(k) for k in ("id", "package", "installed", "severity", "fixed")}
    return dict(zip(("id", "package", "installed", "severity", "fixed"), item, strict=False))


def alias_statuses(project: ProjectHandle) -> list[dict[str, Any]]:
    """One row per model alias: the version it serves, its status and advisory ids."""
    import json

    with project.db.read() as conn:
        rows = conn.execute(
            select(aliases.c.name, aliases.c.alias, aliases.c.version, models.c.scan_status,
                   vuln_results.c.checked_at, vuln_results.c.matches_json, vuln_results.c.max_severity)
            .join(models, (models.c.name == aliases.c.name) & (models.c.version == aliases.c.version))
            .outerjoin(vuln_results, (vuln_results.c.name == aliases.c.name)
                       & (vuln_results.c.version == aliases.c.version))
            .where(aliases.c.kind == "model")
            .order_by(aliases.c.name, aliases.c.alias)
        ).all()
    out = []
    for r in rows:
        matches = json.loads(r.matches_json) if r.matches_json else []
        out.append({
            "name": r.name, "alias": r.alias, "version": int(r.version),
            "status": _status(str(r.scan_status), r.checked_at is not None, matches),
            "checked_at": r.checked_at, "max_severity": r.max_severity,
            "advisories": [_brief(m) for m in matches],
        })
    return out
