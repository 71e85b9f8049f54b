"""Dashboard users: names, roles and argon2 password hashes in ``<project home>/ui/users.json``.

Writes are atomic (temp file + rename, mode 0600) and every change is written to the audit log.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bastion.errors import AuthError, ConfigError, StoreError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["ROLES", "User", "UserStore"]

ROLES = ("viewer", "operator", "admin")
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
    """Users of one project's dashboard."""

    def __init__(self, project: ProjectHandle) -> None:
        self.project = project
        self.path: Path = Path(project.home) / "ui" / "users.json"

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"The dashboard user file {self.path} cannot be read ({e}); restore it from a backup."
            ) from e
        if not isinstance(doc, dict) or doc.get("schema_version") != 1 or not isinstance(doc.get("users"), dict):
            raise ConfigError(f"The dashboard user file {self.path} is not a schema_version 1 user list.")
        users: dict[str, dict[str, Any]] = doc["users"]
        return users

    def _save(self, users: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"schema_version": 1, "users": users}, indent=2, sort_keys=True).encode()
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users.", suffix=".tmp")
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as e:
            raise StoreError(f"Cannot write the dashboard user file {self.path}: {e.strerror}.") from e

    def list(self) -> list[User]:
        """Every user, sorted by name."""
        return [_user(n, u) for n, u in sorted(self._load().items())]

    def get(self, name: str) -> User | None:
        u = self._load().get(name)
        return _user(name, u) if u else None

    def add(self, name: str, password: str, *, role: str, replace: bool = False) -> User:
        """Create (or with ``replace``, reset) a user; audited as ``ui.user.add``."""
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"A user name must be 1-64 letters, digits or '_.@-' starting with a letter or digit; got {name!r}."
            )
        if role not in ROLES:
            raise ConfigError(f"The role must be one of {', '.join(ROLES)}; got {role!r}.")
        if len(password) < _MIN_PASSWORD:
            raise ConfigError(f"The password must have at least {_MIN_PASSWORD} characters; got {len(password)}.")
        users = self._load()
        existed = name in users
        if existed and not replace:
            raise ConfigError(f"User {name!r} exists already; remove it first or pass replace=True.")
        from bastion.audit.log import now_iso

        users[name] = {
            "role": role,
            "hash": _hasher.hash(password),
            "created_at": now_iso(),
            "created_by": self.project.actor,
        }
        self._save(users)
        self.project.audited("ui.user.add", f"user:{name}", {"role": role, "replaced": existed})
        return _user(name, users[name])

    def remove(self, name: str) -> None:
        """Delete a user; audited as ``ui.user.remove``."""
        users = self._load()
        if name not in users:
            raise ConfigError(f"No dashboard user {name!r}; known: {', '.join(sorted(users)) or 'none'}.")
        del users[name]
        self._save(users)
        self.project.audited("ui.user.remove", f"user:{name}", {})

    def authenticate(self, name: str, password: str) -> User:
        """The user when ``password`` matches; raises AuthError otherwise (same message either way)."""
        u = self._load().get(name)
        stored = u["hash"] if u else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise AuthError("Unknown user or wrong password.") from None
        if u is None:
            raise AuthError("Unknown user or wrong password.")
        if _hasher.check_needs_rehash(stored):
            users = self._load()
            users[name]["hash"] = _hasher.hash(password)
            self._save(users)
        return _user(name, u)


def _user(name: str, u: dict[str, Any]) -> User:
    role = u.get("role")
    if role not in ROLES:
        raise ConfigError(f"User {name!r} in the dashboard user file has an unknown role {role!r}.")
    return User(
        name=name, role=str(role), created_at=str(u.get("created_at", "")), created_by=str(u.get("created_by", ""))
    )
