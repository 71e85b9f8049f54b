"""Documents stored with a version (scan reports, gate results, signatures, attestations, …)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from bastion.errors import IntegrityError, RegistryError
from bastion.registry._common import now_iso, resolve_version
from bastion.store.schema import attachments, datasets, models

if TYPE_CHECKING:
    from bastion.project import Project
    from bastion.protocols import ProjectHandle

_TABLES = {"model": models, "dataset": datasets}
INLINE_LIMIT = 256 * 1024
_INSERT = attachments.insert()


def _table(subject_kind: str) -> Any:
    if subject_kind not in _TABLES:
        raise RegistryError(f"subject_kind must be 'model' or 'dataset'; got {subject_kind!r}.")
    return _TABLES[subject_kind]


def insert_doc(
    project: Project,
    conn: Connection,
    subject_kind: str,
    name: str,
    version: int,
    kind: str,
    document: dict[str, Any],
    *,
    audit: bool = True,
) -> str:
    """Store ``document`` with a version inside ``conn``'s transaction; audited unless the caller's own
    entry already names its digest."""
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()
    if len(data) <= INLINE_LIMIT:  # small documents live in the row: no blob write, no fsyncs
        digest, body = "sha256:" + hashlib.sha256(data).hexdigest(), data.decode()
    else:
        digest, body = project.blobs.put_bytes(data), None
    conn.execute(
        _INSERT,
        {"subject_kind": subject_kind, "name": name, "version": version, "doc_kind": kind, "digest": digest,
         "created_at": now_iso(), "created_by": project.actor, "body": body},
    )
    if audit:
        project.record(conn, f"{subject_kind}.attach.{kind}", f"{name}:{version}", {"digest": digest})
    return digest


def attach(project: Project, ref: str, kind: str, document: dict[str, Any], *, subject_kind: str) -> str:
    if not kind or not kind.replace("_", "").replace("-", "").isalnum():
        raise RegistryError(f"Attachment kind must be letters, digits, '_' or '-'; got {kind!r}.")
    with project.transaction() as conn:
        name, version = resolve_version(conn, _table(subject_kind), subject_kind, ref)
        return insert_doc(project, conn, subject_kind, name, version, kind, document)


def list_docs(project: Project, ref: str, kind: str, *, subject_kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in list_records(project, ref, kind, subject_kind=subject_kind)]


def list_records(
    project: ProjectHandle, ref: str, kind: str, *, subject_kind: str = "model"
) -> list[tuple[str, dict[str, Any]]]:
    """``(digest, document)`` of each document of ``kind`` stored with a version, oldest first (verified)."""
    with project.db.read() as conn:
        name, version = resolve_version(conn, _table(subject_kind), subject_kind, ref)
        rows = conn.execute(
            select(attachments.c.digest, attachments.c.body)
            .where(
                attachments.c.subject_kind == subject_kind,
                attachments.c.name == name,
                attachments.c.version == version,
                attachments.c.doc_kind == kind,
            )
            .order_by(attachments.c.id)
        ).all()
    out: list[tuple[str, dict[str, Any]]] = []
    what = f"{kind} document of {name}:{version}"
    for digest, body in rows:
        out.append((str(digest), load_verified(project, str(digest), body, what)))
    return out


def load_verified(project: ProjectHandle, digest: str, body: str | None, what: str) -> dict[str, Any]:
    """An attachment's document, checked against its digest (inline body, or the blob it names)."""
    if body is None:
        data = project.blobs.get_bytes(digest, what=what)
    else:
        data = body.encode()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"The stored {what} was edited after it was written (digest mismatch).")
    doc: dict[str, Any] = json.loads(data)
    return doc
