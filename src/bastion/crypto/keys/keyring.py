"""The project's data keys, each stored wrapped by the master key (envelope encryption).

Rotating the master key re-wraps these small records; the data they protect is never re-encrypted. In a project
the wrapped keys live in the metadata database (table ``data_keys``), shared by every folder and machine on it;
each machine holds the key-encryption key itself (key file or environment). A standalone ring (no project) is a
JSON file, as older versions kept it beside the master key; a project imports that file once, audited.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from bastion.crypto._util import b64d, b64e, fingerprint
from bastion.crypto.keys.interface import KeyProvider
from bastion.errors import KeyManagementError
from bastion.store.schema import data_keys

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["DEPLOYMENT_DOCUMENT", "KEYRING_KIND", "DataKey", "DataKeyInfo", "Keyring"]

# The shared document holding the deployment's random id: every data key wrap is bound to it, so a wrapped key
# copied into another deployment's database does not unwrap there.
DEPLOYMENT_DOCUMENT = "deployment"

KEYRING_KIND = "bastion.data-keys"
PURPOSES = ("encrypt", "tokenize")


@dataclass(frozen=True)
class DataKeyInfo:
    """Public facts about one data key (no key material)."""

    key_id: str
    purpose: str
    scope: str
    created: str
    master_key_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "purpose": self.purpose,
            "scope": self.scope,
            "created": self.created,
            "master_key_ids": list(self.master_key_ids),
        }


@dataclass(frozen=True)
class DataKey:
    """An unwrapped data key; ``material`` is hidden from repr and never serialized."""

    key_id: str
    purpose: str
    scope: str
    material: bytes = field(repr=False)


def _context(key_id: str, purpose: str, scope: str, deployment: str | None = None) -> bytes:
    """Associated data of a wrap: v1 (a file ring) binds id, purpose and scope; v2 (the database) also the
    deployment."""
    if deployment is None:
        return f"bastion.data-key.v1|{key_id}|{purpose}|{scope}".encode()
    return f"bastion.data-key.v2|{deployment}|{key_id}|{purpose}|{scope}".encode()


def deployment_id(conn: Connection, *, actor: str, create: bool) -> str | None:
    """The deployment's random id from the shared document (created on first need inside a write)."""
    from bastion.store.shared import get_document, put_document

    got = get_document(conn, DEPLOYMENT_DOCUMENT)
    if got is not None:
        value = got[1].get("id")
        if not isinstance(value, str) or not value:
            raise KeyManagementError("The deployment id in the database is malformed; data keys cannot be used.")
        return value
    if not create:
        return None
    value = uuid.uuid4().hex
    put_document(conn, DEPLOYMENT_DOCUMENT, {"schema_version": 1, "id": value}, actor=actor)
    return value


class Keyring:
    """Data keys unwrapped on demand through ``provider``: in the project's database when ``project`` is given
    (the file at ``path`` is then only imported, once), else in the JSON file at ``path``."""

    def __init__(self, path: Path | str, provider: KeyProvider, *, project: ProjectHandle | None = None) -> None:
        self.path = Path(path)
        self.provider = provider
        self.project = project
        self._deployment: str | None = None
        if project is not None:
            self._import_file()
            self._doc = self._load_db()
        else:
            self._doc = self._load()

    @property
    def _where(self) -> str:
        return "the data key ring in the database" if self.project is not None else f"the key ring {self.path}"

    # -- the database ring --------------------------------------------------------------------------
    def _rows(self, conn: Connection) -> list[dict[str, Any]]:
        out = []
        for r in conn.execute(select(data_keys).order_by(data_keys.c.created_at, data_keys.c.key_id)):
            try:
                wraps = json.loads(r.wraps_json)
            except ValueError:
                wraps = {}
            if not isinstance(wraps, dict):
                wraps = {}
            out.append({"key_id": r.key_id, "purpose": r.purpose, "scope": r.scope, "created": r.created_at,
                        "wraps": wraps})
        return out

    def _load_db(self, conn: Connection | None = None) -> dict[str, Any]:
        assert self.project is not None
        if conn is None:
            with self.project.db.read() as c:
                return self._load_db(c)
        self._deployment = deployment_id(conn, actor=self.project.actor, create=False)
        return {"schema_version": 1, "kind": KEYRING_KIND, "keys": self._rows(conn)}

    def _insert(self, conn: Connection, e: dict[str, Any]) -> None:
        assert self.project is not None
        conn.execute(insert(data_keys).values(
            key_id=e["key_id"], purpose=e["purpose"], scope=e["scope"], created_at=e["created"],
            created_by=self.project.actor, wraps_json=json.dumps(e["wraps"], sort_keys=True)))

    def _import_file(self) -> None:
        """Import the ``data-keys.json`` an older version (or a standalone ring) kept on this machine: each key
        is unwrapped with its file binding and re-wrapped bound to this deployment; audited; the file is then
        renamed ``*.imported``. Keys already in the database are skipped."""
        assert self.project is not None
        if not self.path.is_file():
            return
        legacy = self._load()["keys"]
        project = self.project
        with project.transaction() as conn:
            dep = deployment_id(conn, actor=project.actor, create=True)
            assert dep is not None
            have = {r["key_id"] for r in self._rows(conn)}
            imported = []
            for e in legacy:
                if e["key_id"] in have:
                    continue
                mk = self.provider.key_id
                if mk not in e["wraps"]:
                    raise KeyManagementError(
                        f"{self.path} holds data key {e['key_id']} wrapped by master key(s) "
                        f"{', '.join(sorted(e['wraps'])) or 'none'}, not by the master key from {self.provider.source} "
                        f"({mk}); open the project once with that master key to import the file into the database."
                    )
                material = self.provider.unwrap(b64d(e["wraps"][mk], what="wrapped data key"),
                                                context=_context(e["key_id"], e["purpose"], e["scope"]))
                wrapped = self.provider.wrap(material, context=_context(e["key_id"], e["purpose"], e["scope"], dep))
                self._insert(conn, {**e, "wraps": {mk: b64e(wrapped)}})
                imported.append(e["key_id"])
            project.record(conn, "keys.data.import", str(self.path),
                           {"imported": imported, "already_present": sorted(have & {e["key_id"] for e in legacy}),
                            "master_key_id": self.provider.key_id})
        os.replace(self.path, self.path.with_name(self.path.name + ".imported"))

    # -- the file ring ------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"schema_version": 1, "kind": KEYRING_KIND, "keys": []}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise KeyManagementError(f"The data key ring {self.path} cannot be read ({e}).") from e
        if not isinstance(doc, dict) or doc.get("kind") != KEYRING_KIND or doc.get("schema_version") != 1:
            raise KeyManagementError(f"{self.path} is not a Bastion data key ring (schema_version 1).")
        return doc

    def save(self) -> None:
        """Write the ring: the file atomically with mode 0600; in the database, each key's wraps."""
        if self.project is not None:
            with self.project.transaction() as conn:
                have = {r["key_id"] for r in self._rows(conn)}
                for e in self._doc["keys"]:
                    if e["key_id"] in have:
                        conn.execute(update(data_keys).where(data_keys.c.key_id == e["key_id"])
                                     .values(wraps_json=json.dumps(e["wraps"], sort_keys=True)))
                    else:
                        self._insert(conn, e)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self._doc, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def entries(self) -> list[DataKeyInfo]:
        """Every data key's public facts, oldest first."""
        return [
            DataKeyInfo(e["key_id"], e["purpose"], e["scope"], e["created"], tuple(sorted(e["wraps"])))
            for e in self._doc["keys"]
        ]

    @staticmethod
    def list_entries(path: Path | str, *, project: ProjectHandle | None = None) -> list[DataKeyInfo]:
        """The public facts of a key ring without any master key (for listing): the project's database ring,
        plus any key of a not yet imported file at ``path``."""

        class _NoKey:
            key_id = "none"
            source = "no master key"

            def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
                raise KeyManagementError("No master key loaded.")

            def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
                raise KeyManagementError("No master key loaded.")

        file_entries = Keyring(path, _NoKey()).entries()
        if project is None:
            return file_entries
        ring = Keyring.__new__(Keyring)
        ring.path, ring.provider, ring.project, ring._deployment = Path(path), _NoKey(), project, None
        ring._doc = ring._load_db()
        db_entries = ring.entries()
        known = {e.key_id for e in db_entries}
        return db_entries + [e for e in file_entries if e.key_id not in known]

    def _entry(self, key_id: str) -> dict[str, Any]:
        for e in self._doc["keys"]:
            if e["key_id"] == key_id:
                return dict(e)
        if self.project is not None:  # made by another machine since this ring was read
            self._doc = self._load_db()
            for e in self._doc["keys"]:
                if e["key_id"] == key_id:
                    return dict(e)
        raise KeyManagementError(
            f"Data key {key_id} is not in {self._where}; the data was protected under another "
            "project's keys, or the key ring was replaced."
        )

    def _ctx(self, key_id: str, purpose: str, scope: str) -> bytes:
        if self.project is None:
            return _context(key_id, purpose, scope)
        if self._deployment is None:
            raise KeyManagementError("The database has data keys but no deployment id; the key ring was altered.")
        return _context(key_id, purpose, scope, self._deployment)

    def _unwrap(self, e: dict[str, Any]) -> DataKey:
        wraps: dict[str, str] = e["wraps"]
        mk = self.provider.key_id
        if mk not in wraps:
            known = ", ".join(sorted(wraps)) or "none"
            raise KeyManagementError(
                f"Data key {e['key_id']} is wrapped by master key(s) {known}, but the master key from "
                f"{self.provider.source} is {mk}. Use the master key this project was protected with."
            )
        try:
            material = self.provider.unwrap(
                b64d(wraps[mk], what="wrapped data key"), context=self._ctx(e["key_id"], e["purpose"], e["scope"])
            )
        except KeyManagementError as err:
            why = ("the key row was altered (its id, purpose, scope or wrap), or it belongs to another deployment"
                   if self.project is not None else "the key ring was altered")
            raise KeyManagementError(
                f"Data key {e['key_id']} in {self._where} does not unwrap under master key {mk} from "
                f"{self.provider.source}: {why}."
            ) from err
        return DataKey(e["key_id"], e["purpose"], e["scope"], material)

    def get(self, key_id: str) -> DataKey:
        """The unwrapped data key ``key_id``."""
        return self._unwrap(self._entry(key_id))

    def find(self, purpose: str, scope: str) -> DataKey | None:
        """The newest data key for ``purpose`` and ``scope``, or None."""
        for e in reversed(self._doc["keys"]):
            if e["purpose"] == purpose and e["scope"] == scope:
                return self._unwrap(e)
        return None

    def get_or_create(self, purpose: str, scope: str) -> DataKey:
        """The data key for ``purpose``/``scope``, creating (and saving) it on first use."""
        if purpose not in PURPOSES:
            raise KeyManagementError(f"Data key purpose must be one of {PURPOSES}; got {purpose!r}.")
        found = self.find(purpose, scope)
        if found is not None:
            return found
        if self.project is not None:  # under the write lock: another machine may have made it meanwhile
            with self.project.transaction() as conn:
                self._doc = self._load_db(conn)
                found = self.find(purpose, scope)
                if found is not None:
                    return found
                self._deployment = deployment_id(conn, actor=self.project.actor, create=True)
                key, entry = self._new_key(purpose, scope)
                self._insert(conn, entry)
                self._doc["keys"].append(entry)
                self.project.record(conn, "keys.data.create", key.key_id,
                                    {"purpose": purpose, "scope": scope, "master_key_id": self.provider.key_id})
            return key
        key, entry = self._new_key(purpose, scope)
        self._doc["keys"].append(entry)
        self.save()
        return key

    def _new_key(self, purpose: str, scope: str) -> tuple[DataKey, dict[str, Any]]:
        material = secrets.token_bytes(32)
        key_id = fingerprint(material, "dk")
        wrapped = self.provider.wrap(material, context=self._ctx(key_id, purpose, scope))
        entry = {
            "key_id": key_id,
            "purpose": purpose,
            "scope": scope,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "wraps": {self.provider.key_id: b64e(wrapped)},
        }
        return DataKey(key_id, purpose, scope, material), entry

    def rewrap(self, new_provider: KeyProvider) -> int:
        """Add a wrap of every data key under ``new_provider`` and save; returns how many keys.

        The old wraps stay until :meth:`drop_other_wraps`, so a crash between steps loses nothing.
        """
        if self.project is not None:
            self._doc = self._load_db()
        count = 0
        for e in self._doc["keys"]:
            key = self._unwrap(e)
            ctx = self._ctx(key.key_id, key.purpose, key.scope)
            e["wraps"][new_provider.key_id] = b64e(new_provider.wrap(key.material, context=ctx))
            count += 1
        self.save()
        return count

    def drop_other_wraps(self, keep: str) -> None:
        """Remove wraps by any master key other than ``keep`` (after a rotation finished)."""
        for e in self._doc["keys"]:
            if keep not in e["wraps"]:
                raise KeyManagementError(f"Data key {e['key_id']} has no wrap under {keep}; not dropping.")
            e["wraps"] = {keep: e["wraps"][keep]}
        self.save()
