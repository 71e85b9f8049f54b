"""Wrapping with a master key held in process memory (shared by the file and environment providers).

The key-encryption key is derived from the master key with HKDF; wrapping is AES-256-GCM.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.crypto._util import derive_key, fingerprint
from bastion.errors import KeyManagementError

__all__ = ["MASTER_KEY_SIZE", "LocalMasterKey"]

MASTER_KEY_SIZE = 32


class LocalMasterKey:
    """A master key in memory, implementing the ``KeyProvider`` protocol."""

    __slots__ = ("_kek", "_key_id", "_source")

    def __init__(self, master_key: bytes, *, source: str) -> None:
        if len(master_key) != MASTER_KEY_SIZE:
            raise KeyManagementError(
                f"The master key from {source} must be {MASTER_KEY_SIZE} bytes; got {len(master_key)}. "
                "Create one with `bastion keys init`."
            )
        self._kek = AESGCM(derive_key(master_key, "bastion/kek/aes-256-gcm/v1"))
        self._key_id = fingerprint(master_key, "mk")
        self._source = source

    def __repr__(self) -> str:
        return f"LocalMasterKey(key_id={self._key_id!r}, source={self._source!r})"

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def source(self) -> str:
        return self._source

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._kek.encrypt(nonce, plaintext, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        try:
            return self._kek.decrypt(wrapped[:12], wrapped[12:], context)
        except (InvalidTag, ValueError) as e:
            raise KeyManagementError(
                f"A data key does not unwrap under master key {self._key_id} from {self._source}: "
                "the master key is wrong or the key ring was altered."
            ) from e
