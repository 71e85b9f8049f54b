"""The project's data keys, each stored wrapped by the master key (envelope encryption).

Rotating the master key re-wraps these small records; the data they protect is never re-encrypted.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.crypto._util import b64d, b64e, fingerprint
from bastion.crypto.keys.interface import KeyProvider
from bastion.errors import KeyManagementError

__all__ = ["KEYRING_KIND", "DataKey", "DataKeyInfo", "Keyring"]

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


def _context(key_id: str, purpose: str, scope: str) -> bytes:
    return f"bastion.data-key.v1|{key_id}|{purpose}|{scope}".encode()


class Keyring:
    """Data keys in a JSON file next to the master key, unwrapped on demand through ``provider``."""

    def __init__(self, path: Path | str, provider: KeyProvider) -> None:
        self.path = Path(path)
        self.provider = provider
        self._doc = self._load()

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
        """Write the ring atomically with mode 0600."""
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
    def list_entries(path: Path | str) -> list[DataKeyInfo]:
        """The public facts of a key ring file without any master key (for listing)."""

        class _NoKey:
            key_id = "none"
            source = "no master key"

            def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
                raise KeyManagementError("No master key loaded.")

            def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
                raise KeyManagementError("No master key loaded.")

        return Keyring(path, _NoKey()).entries()

    def _entry(self, key_id: str) -> dict[str, Any]:
        for e in self._doc["keys"]:
            if e["key_id"] == key_id:
                return dict(e)
        raise KeyManagementError(
            f"Data key {key_id} is not in the key ring {self.path}; the data was protected under another "
            "project's keys, or the key ring was replaced."
        )

    def _unwrap(self, e: dict[str, Any]) -> DataKey:
        wraps: dict[str, str] = e["wraps"]
        mk = self.provider.key_id
        if mk not in wraps:
            known = ", ".join(sorted(wraps)) or "none"
            raise KeyManagementError(
                f"Data key {e['key_id']} is wrapped by master key(s) {known}, but the master key from "
                f"{self.provider.source} is {mk}. Use the master key this project was protected with."
            )
        material = self.provider.unwrap(
            b64d(wraps[mk], what="wrapped data key"), context=_context(e["key_id"], e["purpose"], e["scope"])
        )
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
        material = secrets.token_bytes(32)
        key_id = fingerprint(material, "dk")
        wrapped = self.provider.wrap(material, context=_context(key_id, purpose, scope))
        self._doc["keys"].append(
            {
                "key_id": key_id,
                "purpose": purpose,
                "scope": scope,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "wraps": {self.provider.key_id: b64e(wrapped)},
            }
        )
        self.save()
        return DataKey(key_id, purpose, scope, material)

    def rewrap(self, new_provider: KeyProvider) -> int:
        """Add a wrap of every data key under ``new_provider`` and save; returns how many keys.

        The old wraps stay until :meth:`drop_other_wraps`, so a crash between steps loses nothing.
        """
        count = 0
        for e in self._doc["keys"]:
            key = self._unwrap(e)
            ctx = _context(key.key_id, key.purpose, key.scope)
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
