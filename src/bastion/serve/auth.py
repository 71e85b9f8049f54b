"""API keys and bearer tokens for the model server: a hashed JSON keyring, roles, and optional JWTs.

Keys are 256 random bits shown once; only their SHA-256 digest is stored, found by a short id prefix.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import AuthError, KeyManagementError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = [
    "KEY_PREFIX",
    "ROLES",
    "ApiKeyRecord",
    "ApiKeyStore",
    "Authenticator",
    "CreatedKey",
    "Principal",
    "api_keys_path",
    "create_api_key",
    "list_api_keys",
    "revoke_api_key",
]

log = logging.getLogger("bastion.serve")

ROLES: tuple[str, ...] = ("predict", "explain", "admin")
KEY_PREFIX = "bst_"
# bst_<8 hex id>_<43 chars base64url of 32 random bytes>
_KEY_RE = re.compile(r"bst_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def api_keys_path(project: ProjectHandle) -> Path:
    """``<project home>/keys/api/keys.json``."""
    return Path(project.settings.home_path) / "keys" / "api" / "keys.json"


def _digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    """One API key as stored: never the key itself, only its digest."""

    id: str
    name: str
    roles: tuple[str, ...]
    digest: str
    created_at: str
    created_by: str
    revoked_at: str | None = None
    revoked_by: str | None = None
    revoke_reason: str = ""

    @property
    def prefix(self) -> str:
        """What a user sees of the key: enough to tell keys apart, nothing to use."""
        return f"{KEY_PREFIX}{self.id}_"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["roles"] = list(self.roles)
        d["prefix"] = self.prefix
        d["status"] = "active" if self.active else "revoked"
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ApiKeyRecord:
        roles = d.get("roles")
        if not isinstance(roles, list) or not all(r in ROLES for r in roles):
            raise KeyManagementError(f"API key {d.get('id')!r} has invalid roles {roles!r}; expected some of {ROLES}.")
        digest = str(d.get("digest", ""))
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise KeyManagementError(f"API key {d.get('id')!r} has no valid digest.")
        return ApiKeyRecord(
            id=str(d["id"]), name=str(d["name"]), roles=tuple(roles), digest=digest,
            created_at=str(d.get("created_at", "")), created_by=str(d.get("created_by", "")),
            revoked_at=d.get("revoked_at"), revoked_by=d.get("revoked_by"),
            revoke_reason=str(d.get("revoke_reason", "")),
        )


@dataclass(frozen=True)
class CreatedKey:
    """A freshly made key: ``key`` is shown once and never stored."""

    record: ApiKeyRecord
    key: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), "key": self.key}


class ApiKeyStore:
    """The keyring file: read (cached until its file changes), written atomically under a lock."""

    def __init__(self, path: Path, *, recheck_s: float = 0.5) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._checked = 0.0
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._mutex = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_id: dict[str, ApiKeyRecord] = {}

    # -- reading -----------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> list[ApiKeyRecord]:
        if not self.path.is_file():
            return []
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise KeyManagementError(f"{self.path} is not a readable JSON keyring: {e}. Restore it from backup.") from e
        if not isinstance(doc, dict) or doc.get("schema_version") != 1 or not isinstance(doc.get("keys"), list):
            raise KeyManagementError(f"{self.path} is not a Bastion API keyring (schema_version 1).")
        return [ApiKeyRecord.from_dict(k) for k in doc["keys"]]

    def records(self) -> list[ApiKeyRecord]:
        """Every key (active and revoked), oldest first."""
        return self._read()

    def lookup(self, key_id: str) -> ApiKeyRecord | None:
        """The record with ``key_id``, re-reading the file when it changed (checked at most every ``recheck_s``
        seconds, so a revocation takes effect within that time, without restart).

        A keyring that becomes unreadable denies every key (fail closed) until it is fixed.
        """
        now = time.monotonic()
        if now - self._checked < self.recheck_s and self._stamp is not None:
            return self._by_id.get(key_id)
        self._checked = now
        stamp = self._file_stamp()
        if stamp != self._stamp:
            with self._mutex:
                stamp = self._file_stamp()
                if stamp != self._stamp:
                    try:
                        recs = self._read()
                    except KeyManagementError:
                        log.error("API keyring %s unreadable; refusing every API key until it is fixed", self.path)
                        self._by_id, self._stamp = {}, None
                        return None
                    self._by_id = {r.id: r for r in recs}
                    self._stamp = stamp
        return self._by_id.get(key_id)

    # -- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[ApiKeyRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield self._read()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, records: Iterable[ApiKeyRecord]) -> None:
        doc = {"schema_version": 1, "keys": [{k: v for k, v in r.to_dict().items() if k not in ("prefix", "status")}
                                             for r in records]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(roles))
    if not out:
        raise KeyManagementError(f"An API key needs at least one role: {', '.join(ROLES)}.")
    bad = [r for r in out if r not in ROLES]
    if bad:
        raise KeyManagementError(f"Unknown role(s) {bad}; roles are {', '.join(ROLES)}.")
    return out


def create_api_key(project: ProjectHandle, name: str, roles: Iterable[str]) -> CreatedKey:
    """Make a key with ``roles`` for client ``name``; returns it once (only its digest is kept); audited."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise KeyManagementError(
            f"Invalid API key name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (letter or digit first)."
        )
    role_t = _check_roles(roles)
    store = ApiKeyStore(api_keys_path(project))
    with project.transaction() as tx, store._locked() as recs:
        if any(r.name == name and r.active for r in recs):
            raise KeyManagementError(
                f"An active API key named '{name}' exists; revoke it first (`bastion keys api revoke {name}`)."
            )
        ids = {r.id for r in recs}
        key_id = secrets.token_hex(4)
        while key_id in ids:
            key_id = secrets.token_hex(4)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
        key = f"{KEY_PREFIX}{key_id}_{secret}"
        rec = ApiKeyRecord(id=key_id, name=name, roles=role_t, digest=_digest(key), created_at=_now(),
                           created_by=project.actor)
        store._write([*recs, rec])
        project.record(tx, "keys.api.create", f"api-key:{key_id}", {"name": name, "roles": list(role_t)})
    log.info("API key %s created for %s (%s)", key_id, name, ",".join(role_t))
    return CreatedKey(rec, key)


def list_api_keys(project: ProjectHandle) -> list[ApiKeyRecord]:
    """Every API key of the project (active and revoked), oldest first."""
    return ApiKeyStore(api_keys_path(project)).records()


def revoke_api_key(project: ProjectHandle, ident: str, *, reason: str = "") -> ApiKeyRecord:
    """Revoke the active key named ``ident`` (or with id / prefix ``ident``); running servers stop
    accepting it on their next request. Audited."""
    store = ApiKeyStore(api_keys_path(project))
    with project.transaction() as tx, store._locked() as recs:
        want = ident.removeprefix(KEY_PREFIX).rstrip("_")
        hits = [r for r in recs if r.active and (r.name == ident or r.id == want)]
        if not hits:
            known = ", ".join(f"{r.name} ({r.id})" for r in recs if r.active) or "none"
            raise KeyManagementError(f"No active API key named or with id '{ident}'. Active keys: {known}.")
        target = hits[0]
        new = replace(target, revoked_at=_now(), revoked_by=project.actor, revoke_reason=reason)
        store._write([new if r.id == target.id else r for r in recs])
        project.record(tx, "keys.api.revoke", f"api-key:{target.id}", {"name": target.name, "reason": reason})
    log.info("API key %s (%s) revoked", target.id, target.name)
    return new


# ------------------------------------------------------------------------------------------ callers


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: ``key_id`` is what logs and the audit journal name (never a secret)."""

    key_id: str
    name: str
    roles: frozenset[str]
    kind: str = "api_key"  # or "jwt"

    def allows(self, role: str) -> bool:
        """``admin`` may do everything; other roles only what they name."""
        return role in self.roles or "admin" in self.roles


class Authenticator:
    """Turn an ``Authorization`` header into a :class:`Principal`, or raise :class:`AuthError`.

    Parameters
    ----------
    keys
        The API keyring (re-read when its file changes).
    jwt
        Optional bearer-token verifier (:class:`bastion.serve._jwt.JwtVerifier`); tried for tokens
        that are not Bastion API keys.
    """

    def __init__(self, keys: ApiKeyStore, jwt: Any | None = None) -> None:
        self.keys = keys
        self.jwt = jwt

    def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise AuthError("missing credentials: send 'Authorization: Bearer <API key or token>'")
        scheme, _, cred = header.partition(" ")
        if scheme.lower() != "bearer" or not cred:
            raise AuthError("unsupported authorization scheme; use 'Authorization: Bearer <API key or token>'")
        cred = cred.strip()
        m = _KEY_RE.fullmatch(cred)
        if m is not None:
            return self._api_key(m.group(1), cred)
        if self.jwt is not None and cred.count(".") == 2:
            principal: Principal = self.jwt.verify(cred)
            return principal
        raise AuthError("invalid credentials")

    def _api_key(self, key_id: str, key: str) -> Principal:
        rec = self.keys.lookup(key_id)
        # Compare digests in constant time; an unknown id still costs one hash so timing says nothing.
        actual = _digest(key)
        expected = rec.digest if rec is not None else "sha256:" + "0" * 64
        if not hmac.compare_digest(actual, expected) or rec is None:
            raise AuthError("invalid credentials")
        if not rec.active:
            raise AuthError("invalid credentials")  # same answer as a wrong key: revocation is no oracle
        return Principal(key_id=f"key:{rec.id}", name=rec.name, roles=frozenset(rec.roles))
