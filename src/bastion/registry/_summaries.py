"""Read-only registry summaries for inventories at scale (100s of models x 1000s of versions).

``Project`` returns full version records one model at a time; an inventory needs only counts, aliases and
the newest documents of a few versions, so these ask the tables for exactly that (a handful of queries in
all). Attachment bodies are verified by the same code as ``Project.attachments``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, tuple_

from bastion.registry._attachments import load_verified
from bastion.store.schema import aliases, attachments, models

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["latest_documents", "latest_documents_by_model", "model_summaries", "scan_statuses"]


def model_summaries(project: ProjectHandle) -> list[dict[str, Any]]:
    """Per live model: name, latest version, version count, aliases ``[(alias, version)]``, sorted by name."""
    with project.db.read() as conn:
        counts = conn.execute(
            select(models.c.name, func.max(models.c.version), func.count())
            .where(models.c.deleted_at.is_(None))
            .group_by(models.c.name)
            .order_by(models.c.name)
        ).all()
        alias_rows = conn.execute(
            select(aliases.c.name, aliases.c.alias, aliases.c.version).where(aliases.c.kind == "model")
        ).all()
    by_name: dict[str, list[tuple[str, int]]] = {}
    for name, alias, version in alias_rows:
        by_name.setdefault(name, []).append((alias, int(version)))
    return [
        {"name": name, "latest": int(latest), "count": int(count), "aliases": sorted(by_name.get(name, []))}
        for name, latest, count in counts
    ]


def scan_statuses(project: ProjectHandle, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """``scan_status`` of each (name, version)."""
    pairs = list(pairs)
    if not pairs:
        return {}
    with project.db.read() as conn:
        rows = conn.execute(
            select(models.c.name, models.c.version, models.c.scan_status).where(
                tuple_(models.c.name, models.c.version).in_(pairs)
            )
        ).all()
    return {(r.name, int(r.version)): str(r.scan_status) for r in rows}


def latest_documents(
    project: ProjectHandle, pairs: Iterable[tuple[str, int]], kinds: Iterable[str]
) -> dict[tuple[str, int, str], dict[str, Any]]:
    """The newest model attachment of each kind for each (name, version), verified against its digest."""
    pairs, kinds = list(pairs), list(kinds)
    if not pairs:
        return {}
    with project.db.read() as conn:
        newest = (
            select(func.max(attachments.c.id))
            .where(
                attachments.c.subject_kind == "model",
                attachments.c.doc_kind.in_(kinds),
                tuple_(attachments.c.name, attachments.c.version).in_(pairs),
            )
            .group_by(attachments.c.name, attachments.c.version, attachments.c.doc_kind)
        )
        rows = conn.execute(
            select(attachments.c.name, attachments.c.version, attachments.c.doc_kind, attachments.c.digest,
                   attachments.c.body).where(attachments.c.id.in_(newest))
        ).all()
    return {(r.name, int(r.version), r.doc_kind): _verified(project, r) for r in rows}


def latest_documents_by_model(project: ProjectHandle, kind: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """Per model name: (version, document) of the newest attachment of ``kind`` on any of its versions."""
    with project.db.read() as conn:
        newest = (
            select(func.max(attachments.c.id))
            .where(attachments.c.subject_kind == "model", attachments.c.doc_kind == kind)
            .group_by(attachments.c.name)
        )
        rows = conn.execute(
            select(attachments.c.name, attachments.c.version, attachments.c.doc_kind, attachments.c.digest,
                   attachments.c.body).where(attachments.c.id.in_(newest))
        ).all()
    return {r.name: (int(r.version), _verified(project, r)) for r in rows}


def _verified(project: ProjectHandle, r: Any) -> dict[str, Any]:
    return load_verified(project, str(r.digest), r.body, f"{r.doc_kind} document of {r.name}:{r.version}")
