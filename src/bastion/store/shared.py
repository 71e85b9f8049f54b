"""Small shared JSON documents in the metadata database (for example the public signing keyring).

A document is read and written whole, inside the caller's transaction; its revision goes up by one per write.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, insert, select, update

from bastion.errors import StoreError
from bastion.store.schema import shared_documents

__all__ = ["get_document", "put_document"]


def get_document(conn: Connection, name: str) -> tuple[int, dict[str, Any]] | None:
    """``(revision, body)`` of document ``name``, or None when it was never written."""
    row = conn.execute(
        select(shared_documents.c.revision, shared_documents.c.body).where(shared_documents.c.name == name)
    ).first()
    if row is None:
        return None
    try:
        body = json.loads(row.body)
    except ValueError as e:
        raise StoreError(f"The shared document {name!r} in the database is not valid JSON: {e}.") from e
    if not isinstance(body, dict):
        raise StoreError(f"The shared document {name!r} in the database is not a JSON object.")
    return int(row.revision), body


def put_document(conn: Connection, name: str, body: dict[str, Any], *, actor: str) -> int:
    """Write document ``name`` (inside the caller's write transaction); returns its new revision."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cur = conn.execute(select(shared_documents.c.revision).where(shared_documents.c.name == name)).first()
    if cur is None:
        conn.execute(insert(shared_documents).values(name=name, body=text, revision=1, updated_at=now,
                                                     updated_by=actor))
        return 1
    rev = int(cur.revision) + 1
    conn.execute(update(shared_documents).where(shared_documents.c.name == name)
                 .values(body=text, revision=rev, updated_at=now, updated_by=actor))
    return rev
