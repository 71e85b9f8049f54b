"""Aliases (``production``, ``staging``, …): the table is a cache of audited promote and rollback entries.

The decision to promote is ``bastion.trust``'s; this module only records it (the registry never imports the gates).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from bastion.audit.log import GENESIS
from bastion.errors import NotFoundError, RegistryError
from bastion.registry._common import now_iso, resolve_version
from bastion.registry.records import ModelVersion
from bastion.registry.refs import check_alias, check_name
from bastion.store.schema import alias_history, aliases, audit_log, models

if TYPE_CHECKING:
    from bastion.project import Project
    from bastion.protocols import ProjectHandle

KIND = "model"

# Built once with bind parameters: promote is on the hot path of deployments and rollbacks.
_UPDATE_ALIAS = (
    aliases.update()
    .where(aliases.c.kind == bindparam("k_kind"), aliases.c.name == bindparam("k_name"),
           aliases.c.alias == bindparam("k_alias"))
    .values(version=bindparam("version"), updated_at=bindparam("updated_at"), updated_by=bindparam("updated_by"))
)
_INSERT_ALIAS = aliases.insert()
_CURRENT_ALIAS = select(aliases.c.version).where(
    aliases.c.kind == bindparam("k_kind"),
    aliases.c.name == bindparam("k_name"),
    aliases.c.alias == bindparam("k_alias"),
)
_DELETED_AT = select(models.c.deleted_at).where(models.c.name == bindparam("k_name"),
                                                models.c.version == bindparam("k_version"))
_INSERT_HISTORY = alias_history.insert()

# Promote reads everything it checks under the write lock in ONE statement: is the version still live (and
# there), where the alias points now, and the audit chain's head (the entry it appends links to it).
_PROMOTE_STATE = select(
    select(func.count()).select_from(models).where(
        models.c.name == bindparam("k_name"), models.c.version == bindparam("k_version"),
        models.c.deleted_at.is_(None)).scalar_subquery().label("live"),
    _CURRENT_ALIAS.scalar_subquery().label("previous"),
    select(audit_log.c.seq).order_by(audit_log.c.seq.desc()).limit(1).scalar_subquery().label("head_seq"),
    select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1).scalar_subquery().label("head_hash"),
)
# PostgreSQL: the alias upsert and the history push ride as data-modifying CTEs on the audit entry's INSERT,
# so the whole promotion is one statement (one round trip) after the state read.
_PG_SET_ALIAS = (
    pg_insert(aliases)
    .values(kind=bindparam("a_kind"), name=bindparam("a_name"), alias=bindparam("a_alias"),
            version=bindparam("a_version"), updated_at=bindparam("a_at"), updated_by=bindparam("a_by"))
    .on_conflict_do_update(index_elements=[aliases.c.kind, aliases.c.name, aliases.c.alias],
                           set_={"version": bindparam("a_version"), "updated_at": bindparam("a_at"),
                                 "updated_by": bindparam("a_by")})
    .returning(aliases.c.version)
    .cte("set_alias")
)
_PG_PUSH_HISTORY = (
    alias_history.insert()
    .values(kind=bindparam("a_kind"), name=bindparam("a_name"), alias=bindparam("a_alias"),
            version=bindparam("a_version"), active=1, at=bindparam("a_at"), by=bindparam("a_by"),
            reason=bindparam("a_reason"))
    .returning(alias_history.c.id)
    .cte("push_history")
)
_PG_PROMOTE = (audit_log.insert().values({c.name: bindparam(c.name) for c in audit_log.c})
               .add_cte(_PG_SET_ALIAS, _PG_PUSH_HISTORY))


def _set_alias(conn: Connection, project: ProjectHandle, name: str, alias: str, version: int) -> None:
    values = {"version": version, "updated_at": now_iso(), "updated_by": project.actor}
    updated = conn.execute(_UPDATE_ALIAS, {"k_kind": KIND, "k_name": name, "k_alias": alias, **values})
    if updated.rowcount == 0:
        conn.execute(_INSERT_ALIAS, {"kind": KIND, "name": name, "alias": alias, **values})


def apply_promotion(
    project: ProjectHandle,
    mv: ModelVersion,
    alias: str,
    *,
    evidence: dict[str, Any] | None,
    forced: bool,
    force_reason: str | None,
    refused_because: list[str] | None = None,
) -> ModelVersion:
    """Point ``alias`` at ``mv`` and audit it; the caller (``bastion.trust.promote``) has decided it may.

    The audit entry is the truth (it names version and digest); the alias table is its cache.
    """
    check_alias(alias)
    keys = {"k_kind": KIND, "k_name": mv.name, "k_alias": alias, "k_version": mv.version}
    with project.transaction(first=(_PROMOTE_STATE, keys)) as conn:
        state = conn.info["bastion_first"]
        if not state.live:
            raise RegistryError(f"Model {mv.ref} was deleted meanwhile; not promoted.")
        previous = state.previous
        head = (int(state.head_seq), str(state.head_hash)) if state.head_seq is not None else (0, GENESIS)
        details: dict[str, Any] = {"alias": alias, "version": mv.version, "previous": previous, "digest": mv.digest}
        if evidence is not None:
            details["evidence"] = evidence
        if forced:
            details.update({"forced": True, "reason": force_reason, "refused_because": list(refused_because or [])})
        action = "model.promote.forced" if forced else "model.promote"
        at = now_iso()
        if conn.dialect.name == "postgresql":
            params = {"a_kind": KIND, "a_name": mv.name, "a_alias": alias, "a_version": mv.version, "a_at": at,
                      "a_by": project.actor, "a_reason": force_reason or ""}
            project.record(conn, action, mv.ref, details, head=head, with_statement=(_PG_PROMOTE, params),
                           last=True)
        else:
            _set_alias(conn, project, mv.name, alias, mv.version)
            conn.execute(
                _INSERT_HISTORY,
                {"kind": KIND, "name": mv.name, "alias": alias, "version": mv.version, "active": 1, "at": at,
                 "by": project.actor, "reason": force_reason or ""},
            )
            project.record(conn, action, mv.ref, details, head=head)
    return replace(mv, aliases=tuple(sorted({*mv.aliases, alias})))


def audited_stack(project: ProjectHandle, name: str, alias: str) -> list[int]:
    """The versions ``name@alias`` was promoted to, oldest first, as the audit chain says (rollbacks popped):
    what a rollback goes back to. Entries no signed checkpoint vouches for (appended in the database by someone
    without the audit key) are left out; the ``alias_history`` table is only a cache of this."""
    from bastion.audit.checkpoints import anchor

    events = [e for action in ("model.promote", "model.rollback")
              for e in project.audit.entries(action=action, subject=f"{name}:", newest_first=False)
              if e.details.get("alias") == alias and e.action in _ALIAS_ACTIONS]
    stack: list[int] = []
    for e in sorted(events, key=lambda e: e.seq):
        ver = e.subject.rpartition(":")[2]
        if not ver.isdigit() or not anchor(project, e, vouched=True)[0]:
            continue
        if e.action == "model.rollback":
            if stack:
                stack.pop()
        else:
            stack.append(int(ver))
    return stack


_ALIAS_ACTIONS = ("model.promote", "model.promote.forced", "model.rollback")


def rollback(project: Project, name: str, *, alias: str, reason: str) -> ModelVersion:
    check_name(name, "model name")
    check_alias(alias)
    audited = audited_stack(project, name, alias)  # before the write lock: it reads checkpoints
    with project.transaction() as conn:
        resolve_version(conn, models, KIND, name) if _has_any(conn, name) else _raise_no_model(conn, name)
        stack = conn.execute(
            select(alias_history.c.id, alias_history.c.version)
            .where(
                alias_history.c.kind == KIND,
                alias_history.c.name == name,
                alias_history.c.alias == alias,
                alias_history.c.active == 1,
            )
            .order_by(alias_history.c.id.desc())
            .limit(2)
        ).all()
        if not stack:
            raise RegistryError(f"Alias '{alias}' of model '{name}' has never been set; nothing to roll back.")
        if len(stack) < 2:
            raise RegistryError(
                f"Alias '{alias}' of model '{name}' has no earlier version to roll back to "
                f"(it points at {name}:{stack[0].version}, its first promotion)."
            )
        top, below = stack[0], stack[1]
        if audited[-2:] != [int(below.version), int(top.version)]:
            said = (f"from {name}:{audited[-1]} to {name}:{audited[-2]}" if len(audited) >= 2
                    else "that there is nothing to roll back to")
            raise RegistryError(
                f"The alias history of {name}@{alias} in the database says to roll back from {name}:{top.version} to "
                f"{name}:{below.version}, but the audited promotions and rollbacks say {said}: the history rows (or "
                "unvouched audit entries) were written outside Bastion. Not rolled back; run `bastion audit verify`, "
                f"and promote the version you want explicitly (`bastion model promote {name}:N --alias {alias}`)."
            )
        digest = conn.execute(
            select(models.c.digest).where(models.c.name == name, models.c.version == int(below.version))
        ).scalar()
        conn.execute(alias_history.update().where(alias_history.c.id == top.id).values(active=0))
        _set_alias(conn, project, name, alias, int(below.version))
        project.record(
            conn,
            "model.rollback",
            f"{name}:{below.version}",
            {
                "alias": alias,
                "from": int(top.version),
                "to": int(below.version),
                "digest": digest,
                "reason": reason,
            },
        )
    return project.get_model(f"{name}:{below.version}", include_deleted=True)


def _has_any(conn: Connection, name: str) -> bool:
    return conn.execute(select(models.c.id).where(models.c.name == name).limit(1)).first() is not None


def _raise_no_model(conn: Connection, name: str) -> None:
    names = [n for (n,) in conn.execute(select(models.c.name).distinct().order_by(models.c.name).limit(20))]
    raise NotFoundError(f"No model named '{name}'. Known models: {', '.join(names) or 'none yet'}.")


def history(project: Project, name: str, alias: str) -> list[dict[str, Any]]:
    with project.db.read() as conn:
        rows = conn.execute(
            select(alias_history)
            .where(
                alias_history.c.kind == KIND,
                alias_history.c.name == name,
                alias_history.c.alias == alias,
            )
            .order_by(alias_history.c.id)
        ).all()
    return [
        {"version": int(r.version), "active": bool(r.active), "at": r.at, "by": r.by, "reason": r.reason} for r in rows
    ]
