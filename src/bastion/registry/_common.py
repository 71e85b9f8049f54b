"""Helpers shared by the registry modules: JSON columns, timestamps, version lookups."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Table, func, select

from bastion.audit.log import now_iso
from bastion.errors import NotFoundError
from bastion.registry.refs import Ref, parse_ref
from bastion.store.schema import aliases

__all__ = ["aliases_of", "dumps", "loads", "next_version", "now_iso", "resolve_version"]


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    return json.loads(text)


def next_version(conn: Connection, table: Table, name: str) -> int:
    """The next version number of ``name`` (call inside a serialized write transaction)."""
    cur = conn.execute(select(func.max(table.c.version)).where(table.c.name == name)).scalar()
    return int(cur or 0) + 1


def resolve_version(conn: Connection, table: Table, kind: str, ref: str | Ref) -> tuple[str, int]:
    """``(name, version)`` for a reference; errors say what exists."""
    r = parse_ref(ref) if isinstance(ref, str) else ref
    if r.version is not None:
        found = conn.execute(
            select(table.c.version).where(table.c.name == r.name, table.c.version == r.version)
        ).first()
        if found is None:
            raise NotFoundError(_missing(conn, table, kind, r))
        return r.name, r.version
    if r.alias is not None:
        v = conn.execute(
            select(aliases.c.version).where(
                aliases.c.kind == kind, aliases.c.name == r.name, aliases.c.alias == r.alias
            )
        ).scalar()
        if v is None:
            raise NotFoundError(_missing(conn, table, kind, r))
        return r.name, int(v)
    v = conn.execute(
        select(func.max(table.c.version)).where(table.c.name == r.name, table.c.deleted_at.is_(None))
    ).scalar()
    if v is None:
        raise NotFoundError(_missing(conn, table, kind, r))
    return r.name, int(v)


def _missing(conn: Connection, table: Table, kind: str, r: Ref) -> str:
    versions = [
        int(v) for (v,) in conn.execute(select(table.c.version).where(table.c.name == r.name).order_by(table.c.version))
    ]
    if not versions:
        names = [n for (n,) in conn.execute(select(table.c.name).distinct().order_by(table.c.name).limit(20))]
        known = ", ".join(names) if names else "none yet"
        return f"No {kind} named '{r.name}'. Known {kind}s: {known}."
    if r.alias is not None:
        al = [
            a
            for (a,) in conn.execute(
                select(aliases.c.alias)
                .where(aliases.c.kind == kind, aliases.c.name == r.name)
                .order_by(aliases.c.alias)
            )
        ]
        return f"{kind.capitalize()} '{r.name}' has no alias '{r.alias}'. Aliases: {', '.join(al) or 'none'}."
    span = f"{versions[0]}..{versions[-1]}" if len(versions) > 1 else str(versions[0])
    return f"{kind.capitalize()} '{r.name}' has no version {r.version or '(live)'}; versions: {span}."


def aliases_of(conn: Connection, kind: str, name: str) -> dict[int, tuple[str, ...]]:
    """version -> aliases pointing at it."""
    out: dict[int, list[str]] = {}
    for alias, version in conn.execute(
        select(aliases.c.alias, aliases.c.version).where(aliases.c.kind == kind, aliases.c.name == name)
    ):
        out.setdefault(int(version), []).append(alias)
    return {v: tuple(sorted(a)) for v, a in out.items()}
