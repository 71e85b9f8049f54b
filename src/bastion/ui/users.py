"""Dashboard users: names, roles and argon2 password hashes in the project's metadata database.

Every change is one transaction with its audit entry, and a password or role change or a removal ends the
user's sessions in the same transaction. A ``<project home>/ui/users.json`` from older versions is imported
once (then renamed ``users.json.imported``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update

from bastion.errors import AuthError, ConfigError, StoreError
from bastion.store.schema import ui_sessions, ui_users

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["ROLES", "User", "UserStore"]

ROLES = ("viewer", "operator", "admin")
_ADD, _REMOVE, _IMPORT, _REHASH = "ui.user.add", "ui.user.remove", "ui.user.import", "ui.user.rehash"
log = logging.getLogger("bastion.ui")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_MIN_PASSWORD = 8
_hasher = PasswordHasher()
# Verifying against this keeps the time of a login for an unknown user close to that of a known one.
_DUMMY_HASH = _hasher.hash("bastion-dummy-password")


@dataclass(frozen=True)
class User:
    """One dashboard user (the hash never leaves this module's store)."""

    name: str
    role: str
    created_at: str = ""
    created_by: str = ""

    def can(self, role: str) -> bool:
        """Whether this user's role is at least ``role`` (viewer < operator < admin)."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created_at": self.created_at, "created_by": self.created_by}


class UserStore:
    """Users of one project's dashboard (rows of ``ui_users``)."""

    def __init__(self, project: ProjectHandle) -> None:
        self.project = project
        self.legacy_path: Path = Path(project.home) / "ui" / "users.json"
        self._imported = False

    def _import_legacy(self) -> None:
        """Move users of a ``users.json`` (schema_version 1) into the database, once; fails closed on a bad file."""
        if self._imported:
            return
        if not self.legacy_path.is_file():
            self._imported = True
            return
        try:
            doc = json.loads(self.legacy_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"The dashboard user file {self.legacy_path} cannot be read ({e}); restore it from a backup."
            ) from e
        if not isinstance(doc, dict) or doc.get("schema_version") != 1 or not isinstance(doc.get("users"), dict):
            raise ConfigError(f"The dashboard user file {self.legacy_path} is not a schema_version 1 user list.")
        from bastion.audit.log import now_iso

        imported = []
        with self.project.transaction() as conn:
            have = set(conn.execute(select(ui_users.c.name)).scalars())
            for name, u in sorted(doc["users"].items()):
                if name in have or not isinstance(u, dict):
                    continue
                _user(name, u)  # validates the role
                conn.execute(insert(ui_users).values(
                    name=name, role=u["role"], pw_hash=str(u["hash"]), created_at=str(u.get("created_at", "")),
                    created_by=str(u.get("created_by", "")), changed_at=now_iso()))
                imported.append(name)
            if imported:
                users = doc["users"]
                self.project.record(conn, _IMPORT, "ui:users", {
                    "users": imported, "from": str(self.legacy_path),
                    "roles": {n: users[n]["role"] for n in imported},
                    "pw": {n: _pw_digest(str(users[n]["hash"])) for n in imported}})
        try:
            os.replace(self.legacy_path, self.legacy_path.with_name("users.json.imported"))
        except OSError as e:
            raise StoreError(f"Imported {self.legacy_path} but cannot rename it: {e.strerror}.") from e
        self._imported = True

    def list(self) -> list[User]:
        """Every user, sorted by name."""
        self._import_legacy()
        with self.project.db.read() as conn:
            rows = conn.execute(select(ui_users).order_by(ui_users.c.name)).mappings().all()
        return [_user(r["name"], r) for r in rows]

    def get(self, name: str) -> User | None:
        self._import_legacy()
        row = self._row(name)
        return _user(name, row) if row else None

    def _row(self, name: str) -> dict[str, Any] | None:
        with self.project.db.read() as conn:
            row = conn.execute(select(ui_users).where(ui_users.c.name == name)).mappings().first()
        return dict(row) if row else None

    def add(self, name: str, password: str, *, role: str, replace: bool = False) -> User:
        """Create (or with ``replace``, reset) a user; audited as ``ui.user.add``. A reset ends the user's sessions."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(
                f"A user name must be 1-64 letters, digits or '_.@-' starting with a letter or digit; got {name!r}."
            )
        if role not in ROLES:
            raise ConfigError(f"The role must be one of {', '.join(ROLES)}; got {role!r}.")
        if len(password) < _MIN_PASSWORD:
            raise ConfigError(f"The password must have at least {_MIN_PASSWORD} characters; got {len(password)}.")
        self._import_legacy()
        from bastion.audit.log import now_iso

        pw_hash = _hasher.hash(password)  # outside the write transaction: argon2 takes tens of milliseconds
        now = now_iso()
        with self.project.transaction() as conn:
            existed = conn.execute(select(ui_users.c.name).where(ui_users.c.name == name)).first() is not None
            if existed and not replace:
                raise ConfigError(f"User {name!r} exists already; remove it first or pass replace=True.")
            values = {"role": role, "pw_hash": pw_hash, "created_at": now, "created_by": self.project.actor,
                      "changed_at": now}
            if existed:
                conn.execute(update(ui_users).where(ui_users.c.name == name).values(**values))
                ended = conn.execute(delete(ui_sessions).where(ui_sessions.c.user_name == name)).rowcount
            else:
                conn.execute(insert(ui_users).values(name=name, **values))
                ended = 0
            self.project.record(conn, _ADD, f"user:{name}", {
                "role": role, "replaced": existed, "pw": _pw_digest(pw_hash),
                **({"sessions_ended": ended} if ended else {})})
        return User(name, role, now, self.project.actor)

    def remove(self, name: str) -> None:
        """Delete a user and end their sessions; audited as ``ui.user.remove``."""
        self._import_legacy()
        with self.project.transaction() as conn:
            gone = conn.execute(delete(ui_users).where(ui_users.c.name == name)).rowcount
            if not gone:
                known = sorted(conn.execute(select(ui_users.c.name)).scalars())
                raise ConfigError(f"No dashboard user {name!r}; known: {', '.join(known) or 'none'}.")
            ended = conn.execute(delete(ui_sessions).where(ui_sessions.c.user_name == name)).rowcount
            self.project.record(conn, "ui.user.remove", f"user:{name}", {"sessions_ended": ended} if ended else {})

    def unlock(self, name: str) -> int:
        """Lift the login lockouts of ``name`` (account-wide and per address) before their window ends;
        audited as ``ui.user.unlock``. Returns how many lockout counters were cleared."""
        from bastion.ui._session import unlock_account

        self._import_legacy()
        with self.project.transaction() as conn:
            if conn.execute(select(ui_users.c.name).where(ui_users.c.name == name)).first() is None:
                known = sorted(conn.execute(select(ui_users.c.name)).scalars())
                raise ConfigError(f"No dashboard user {name!r}; known: {', '.join(known) or 'none'}.")
            cleared = unlock_account(conn, name)
            self.project.record(conn, "ui.user.unlock", f"user:{name}", {"cleared": cleared})
        return cleared

    def authenticate(self, name: str, password: str) -> User:
        """The user when ``password`` matches; raises AuthError otherwise (same message either way)."""
        self._import_legacy()
        u = self._row(name) if isinstance(name, str) and _NAME.fullmatch(name) else None
        stored = u["pw_hash"] if u else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise AuthError("Unknown user or wrong password.") from None
        if u is None:
            raise AuthError("Unknown user or wrong password.")
        why = self.unproven(name, u)
        if why:  # the row is not what the audit chain says: refused like a wrong password, the reason logged
            log.warning("dashboard login refused: the user row is not proven by the audit chain: %s", why)
            raise AuthError("Unknown user or wrong password.")
        if _hasher.check_needs_rehash(stored):
            fresh = _hasher.hash(password)
            with self.project.transaction() as conn:  # same password, new parameters: sessions stay
                changed = conn.execute(update(ui_users).where(ui_users.c.name == name, ui_users.c.pw_hash == stored)
                                       .values(pw_hash=fresh)).rowcount
                if changed:
                    self.project.record(conn, _REHASH, f"user:{name}", {"pw": _pw_digest(fresh)})
        return _user(name, u)

    def unproven(self, name: str, row: dict[str, Any]) -> str:
        """Why the row of ``name`` is not what the audit chain says ('' when it is): the ``ui_users`` table is a
        cache. The newest ``ui.user.add``/``import``/``rehash``/``remove`` entry must give the same role and the
        digest of the same password hash, and (with an audit key) be vouched for by a signed checkpoint; so whoever
        can write only the database cannot raise a role, swap in a password of their own or add a user."""
        from bastion.audit.checkpoints import anchor

        subject = f"user:{name}"
        newest = None
        role = pw = None
        for e in self.project.audit.entries(action="ui.user.", newest_first=False):
            if e.subject == subject and e.action in (_ADD, _REMOVE):
                newest, role, pw = e, e.details.get("role"), e.details.get("pw")
            elif e.subject == subject and e.action == _REHASH and newest is not None:
                newest, pw = e, e.details.get("pw")
            elif e.action == _IMPORT and name in (e.details.get("users") or []):
                newest = e
                role = (e.details.get("roles") or {}).get(name)
                pw = (e.details.get("pw") or {}).get(name)
        if newest is None:
            return "no audited ui.user.add names this user (the row was added in the database outside Bastion)"
        if newest.action == _REMOVE:
            return f"the user was removed (audit entry {newest.seq})"
        if role is not None and role != row.get("role"):
            return f"the row's role {row.get('role')!r} is not the {role!r} audit entry {newest.seq} recorded"
        if pw is not None and pw != _pw_digest(str(row.get("pw_hash"))):
            return f"the row's password hash is not the one audit entry {newest.seq} recorded"
        ok, why = anchor(self.project, newest, vouched=True)
        return "" if ok else f"its audit entry {newest.seq} is not proven: {why}"

    def exists(self, name: str) -> bool:
        return bool(isinstance(name, str) and _NAME.fullmatch(name) and self._row(name) is not None)


def _pw_digest(pw_hash: str) -> str:
    """What the audit chain records of a password hash: its SHA-256 (the argon2 salt stays out of the log, so a
    guess cannot be checked against it)."""
    return "sha256:" + hashlib.sha256(pw_hash.encode()).hexdigest()


def _user(name: str, u: Any) -> User:
    role = u.get("role")
    if role not in ROLES:
        raise ConfigError(f"Dashboard user {name!r} has an unknown role {role!r}.")
    return User(
        name=name, role=str(role), created_at=str(u.get("created_at", "")), created_by=str(u.get("created_by", ""))
    )
