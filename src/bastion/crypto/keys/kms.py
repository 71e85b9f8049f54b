"""A small KMS interface (encrypt/decrypt under a named remote key) and a local test implementation.

Real services (AWS KMS, GCP KMS, Vault transit) fit behind ``KmsClient`` in a few lines each.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from bastion.crypto._util import fingerprint
from bastion.crypto.keys._local import LocalMasterKey
from bastion.errors import KeyManagementError

__all__ = ["KmsClient", "KmsKeyProvider", "LocalKms"]


class KmsClient(Protocol):
    """What Bastion needs from a KMS: encrypt and decrypt small blobs under a named key."""

    def encrypt(self, key_name: str, plaintext: bytes, *, context: bytes) -> bytes: ...

    def decrypt(self, key_name: str, ciphertext: bytes, *, context: bytes) -> bytes: ...


class LocalKms:
    """An in-process KMS for tests and demos: named keys live in memory only."""

    def __init__(self) -> None:
        self._keys: dict[str, LocalMasterKey] = {}

    def create_key(self, key_name: str) -> None:
        """Create a named key (idempotent)."""
        if key_name not in self._keys:
            self._keys[key_name] = LocalMasterKey(secrets.token_bytes(32), source=f"local KMS key {key_name}")

    def _key(self, key_name: str) -> LocalMasterKey:
        try:
            return self._keys[key_name]
        except KeyError:
            raise KeyManagementError(f"The KMS has no key named '{key_name}'.") from None

    def encrypt(self, key_name: str, plaintext: bytes, *, context: bytes) -> bytes:
        return self._key(key_name).wrap(plaintext, context=context)

    def decrypt(self, key_name: str, ciphertext: bytes, *, context: bytes) -> bytes:
        return self._key(key_name).unwrap(ciphertext, context=context)


class KmsKeyProvider:
    """Key provider that wraps data keys through a KMS; the master key never leaves the KMS."""

    def __init__(self, client: KmsClient, key_name: str) -> None:
        self._client = client
        self._key_name = key_name
        self._key_id = fingerprint(key_name.encode("utf-8"), "kms")

    def __repr__(self) -> str:
        return f"KmsKeyProvider(key_name={self._key_name!r})"

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def source(self) -> str:
        return f"KMS key {self._key_name}"

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        return self._client.encrypt(self._key_name, plaintext, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        try:
            return self._client.decrypt(self._key_name, wrapped, context=context)
        except KeyManagementError:
            raise
        except Exception as e:  # a KMS client raises its own types; give one clear error
            raise KeyManagementError(f"The KMS refused to unwrap a data key with {self.source}: {e}") from e
