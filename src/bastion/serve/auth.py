"""API keys and bearer tokens for the model server: hashed keys in the metadata database, roles, optional JWTs.

Keys are 256 random bits shown once; only their SHA-256 digest is stored, found by a short id prefix.
Every server and folder using the same database shares the keys and their revocations.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import AuthError, BastionError, KeyManagementError

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
    "import_legacy_keyring",
    "list_api_keys",
    "prove_api_keys",
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
    """``<project home>/keys/api/keys.json``: where Bastion before 0.2 kept API keys (imported into the
    database on first use)."""
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
    """The API keys in the metadata database, shared by every server and folder using that database.

    A server keeps the rows in memory; a background thread re-reads them every ``recheck_s`` seconds (default
    0.5), so a key created or revoked anywhere takes effect on every replica within a second, without restart,
    and no request ever waits for the database. When the rows could not be re-read for ``max_stale_s``
    seconds (the database is unreachable), every API key is refused until it answers again (fail closed).
    ``recheck_s=0`` reads the rows on every lookup instead (tests).
    """

    def __init__(self, db: Any, *, recheck_s: float = 0.5, max_stale_s: float = 5.0,
                 project: ProjectHandle | None = None) -> None:
        self.db = db
        # with the project, each row is held to the audit chain (see :func:`prove_api_keys`): the server's store
        self.project = project
        self._proven: dict[tuple[int, str], str] = {}
        self.recheck_s = recheck_s
        self.max_stale_s = max(max_stale_s, 2 * recheck_s)
        self._mutex = threading.Lock()
        self._by_id: dict[str, ApiKeyRecord] = {}
        self._ok = False
        self._fresh_at = -1e18
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- reading -----------------------------------------------------------------------------
    @staticmethod
    def read(conn: Any) -> list[ApiKeyRecord]:
        """Every key row visible to ``conn``, oldest first."""
        from sqlalchemy import select

        from bastion.store.schema import api_keys

        out = []
        for r in conn.execute(select(api_keys).order_by(api_keys.c.seq)):
            try:
                roles = json.loads(r.roles_json)
            except ValueError as e:
                raise KeyManagementError(f"API key {r.id!r} has unreadable roles in the database.") from e
            out.append(ApiKeyRecord.from_dict({
                "id": r.id, "name": r.name, "roles": roles, "digest": r.digest, "created_at": r.created_at,
                "created_by": r.created_by, "revoked_at": r.revoked_at, "revoked_by": r.revoked_by,
                "revoke_reason": r.revoke_reason or "",
            }))
        return out

    def records(self) -> list[ApiKeyRecord]:
        """Every key (active and revoked), oldest first."""
        with self.db.read() as conn:
            return self.read(conn)

    def refresh(self) -> bool:
        """Re-read the rows now; False (and every key refused) when the database cannot be read."""
        try:
            recs = self.records()
            if self.project is not None:
                recs = prove_api_keys(self.project, recs, cache=self._proven)
        except Exception as e:  # a database error of any kind: fail closed, say so once
            if self._ok:
                msg = e.message if isinstance(e, BastionError) else type(e).__name__
                log.error("API keys unreadable (%s); refusing every API key until the database answers",
                          msg.splitlines()[0] if msg else "error")
            self._ok = False
            return False
        self._by_id = {r.id: r for r in recs}
        self._ok = True
        self._fresh_at = time.monotonic()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.recheck_s):
            self.refresh()

    def close(self) -> None:
        """Stop the background refresh."""
        self._stop.set()

    def lookup(self, key_id: str) -> ApiKeyRecord | None:
        """The record with ``key_id`` as last read from the database (see the class docstring)."""
        if self.recheck_s <= 0:
            with self._mutex:
                return self._by_id.get(key_id) if self.refresh() else None
        if self._thread is None:
            with self._mutex:
                if self._thread is None:
                    self.refresh()
                    t = threading.Thread(target=self._run, name="bastion-api-keys", daemon=True)
                    t.start()
                    self._thread = t
        if not self._ok or time.monotonic() - self._fresh_at > self.max_stale_s:
            return None
        return self._by_id.get(key_id)


_CREATE, _IMPORT, _REVOKE = "keys.api.create", "keys.api.import", "keys.api.revoke"


def prove_api_keys(project: ProjectHandle, recs: Iterable[ApiKeyRecord], *,
                   cache: dict[tuple[int, str], str] | None = None) -> list[ApiKeyRecord]:
    """The key rows the audit chain accounts for (the ``api_keys`` table is a cache of it).

    A row counts only when an intact ``keys.api.create`` (or ``import``) entry names its id, with the same digest,
    vouched for by a signed checkpoint when the project has an audit key; its roles are narrowed to those the
    entry recorded; any ``keys.api.revoke`` entry revokes it whatever the row says. So whoever can write only the
    database cannot add a key, widen a key's roles, swap its digest for a key of their own, or un-revoke it.
    ``cache``: ``(seq, hash)`` of create entries already proven (a server re-reads every half second).
    """
    from bastion.audit.checkpoints import anchor

    made: dict[str, tuple[Any, tuple[str, ...] | None, str | None]] = {}
    revoked: dict[str, Any] = {}
    for e in project.audit.entries(action="keys.api.", newest_first=False):
        if e.action == _CREATE and e.subject.startswith("api-key:"):
            roles = e.details.get("roles")
            digest = e.details.get("digest")
            made.setdefault(e.subject.removeprefix("api-key:"), (
                e, tuple(roles) if isinstance(roles, list) else None, digest if isinstance(digest, str) else None))
        elif e.action == _IMPORT:
            for k in e.details.get("keys") or []:
                if isinstance(k, dict) and isinstance(k.get("id"), str):
                    made.setdefault(k["id"], (e, tuple(k.get("roles") or ()), str(k.get("digest") or "")))
        elif e.action == _REVOKE and e.subject.startswith("api-key:"):
            revoked.setdefault(e.subject.removeprefix("api-key:"), e)
    cache = {} if cache is None else cache
    out = []
    for r in recs:
        why = ""
        got = made.get(r.id)
        if got is None:
            why = "no audited keys.api.create names it (the row was added in the database outside Bastion)"
        else:
            entry, roles, digest = got
            if digest is not None and digest != r.digest:
                why = f"its digest differs from the one audit entry {entry.seq} recorded (the row was edited)"
            elif roles is not None:
                narrowed = tuple(x for x in r.roles if x in roles)
                if narrowed != r.roles:
                    log.warning("API key %s: roles %s in the database, %s in audit entry %d; using the audited ones",
                                r.id, ",".join(r.roles), ",".join(roles), entry.seq)
                    r = replace(r, roles=narrowed)
                if not narrowed:
                    why = "none of its roles is one the audit chain recorded"
            if not why and (entry.seq, entry.hash) not in cache:
                ok, reason = anchor(project, entry, vouched=True)
                if ok:
                    cache[(entry.seq, entry.hash)] = reason
                else:
                    why = f"its audit entry {entry.seq} is not proven: {reason}"
        if why:
            log.warning("API key %s refused: %s", r.id, why)
            continue
        rev = revoked.get(r.id)
        if rev is not None and r.active:
            r = replace(r, revoked_at=rev.ts, revoked_by=rev.actor, revoke_reason=str(rev.details.get("reason") or ""))
        out.append(r)
    return out


def import_legacy_keyring(project: ProjectHandle, conn: Any) -> int:
    """Move a ``keys/api/keys.json`` written by an older Bastion into the database (once); returns how many
    keys were imported. The file is renamed ``keys.json.imported`` afterwards."""
    from sqlalchemy import insert

    from bastion.store.schema import api_keys

    path = api_keys_path(project)
    if not path.is_file():
        return 0
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise KeyManagementError(f"{path} is not a readable JSON keyring: {e}. Restore it from backup.") from e
    if not isinstance(doc, dict) or doc.get("schema_version") != 1 or not isinstance(doc.get("keys"), list):
        raise KeyManagementError(f"{path} is not a Bastion API keyring (schema_version 1).")
    have = {r.id for r in ApiKeyStore.read(conn)}
    done = []
    for rec in (ApiKeyRecord.from_dict(k) for k in doc["keys"]):
        if rec.id in have:
            continue
        conn.execute(insert(api_keys).values(**_row(rec), seq=_next_seq(conn)))
        done.append(rec)
    os.replace(path, path.with_name(path.name + ".imported"))
    if done:  # each key's id, roles and digest: the chain accounts for every row (prove_api_keys)
        project.record(conn, _IMPORT, "api-keys", {"count": len(done), "from": path.name, "keys": [
            {"id": r.id, "roles": list(r.roles), "digest": r.digest} for r in done]})
        for r in done:
            if not r.active:
                project.record(conn, _REVOKE, f"api-key:{r.id}", {"name": r.name, "reason": r.revoke_reason})
    return len(done)


def _next_seq(conn: Any) -> int:
    from sqlalchemy import func, select

    from bastion.store.schema import api_keys

    return int(conn.execute(select(func.coalesce(func.max(api_keys.c.seq), 0))).scalar_one()) + 1


def _row(rec: ApiKeyRecord) -> dict[str, Any]:
    return {"id": rec.id, "name": rec.name, "roles_json": json.dumps(list(rec.roles)), "digest": rec.digest,
            "created_at": rec.created_at, "created_by": rec.created_by, "revoked_at": rec.revoked_at,
            "revoked_by": rec.revoked_by, "revoke_reason": rec.revoke_reason}


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
    from sqlalchemy import insert

    from bastion.store.schema import api_keys

    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise KeyManagementError(
            f"Invalid API key name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (letter or digit first)."
        )
    role_t = _check_roles(roles)
    with project.transaction() as tx:
        import_legacy_keyring(project, tx)
        recs = ApiKeyStore.read(tx)
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
        tx.execute(insert(api_keys).values(**_row(rec), seq=_next_seq(tx)))
        project.record(tx, _CREATE, f"api-key:{key_id}", {"name": name, "roles": list(role_t), "digest": rec.digest})
    log.info("API key %s created for %s (%s)", key_id, name, ",".join(role_t))
    return CreatedKey(rec, key)


def list_api_keys(project: ProjectHandle) -> list[ApiKeyRecord]:
    """Every API key of the deployment (active and revoked), oldest first."""
    if api_keys_path(project).is_file():
        with project.transaction() as tx:
            import_legacy_keyring(project, tx)
    return ApiKeyStore(project.db).records()


def revoke_api_key(project: ProjectHandle, ident: str, *, reason: str = "") -> ApiKeyRecord:
    """Revoke the active key named ``ident`` (or with id / prefix ``ident``); every server using the same
    database refuses it within a second. Audited."""
    from sqlalchemy import update

    from bastion.store.schema import api_keys

    with project.transaction() as tx:
        import_legacy_keyring(project, tx)
        recs = ApiKeyStore.read(tx)
        want = ident.removeprefix(KEY_PREFIX).rstrip("_")
        hits = [r for r in recs if r.active and (r.name == ident or r.id == want)]
        if not hits:
            known = ", ".join(f"{r.name} ({r.id})" for r in recs if r.active) or "none"
            raise KeyManagementError(f"No active API key named or with id '{ident}'. Active keys: {known}.")
        target = hits[0]
        new = replace(target, revoked_at=_now(), revoked_by=project.actor, revoke_reason=reason)
        tx.execute(update(api_keys).where(api_keys.c.id == target.id, api_keys.c.revoked_at.is_(None))
                   .values(revoked_at=new.revoked_at, revoked_by=new.revoked_by, revoke_reason=reason))
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
