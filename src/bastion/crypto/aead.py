"""Randomized authenticated encryption (AES-256-GCM) of cell values under a per-dataset data key.

Each ciphertext is ``nonce(12) || ciphertext || tag(16)``; the associated data binds the data key id and
the column, so a value moved to another column or dataset fails to decrypt instead of giving garbage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.crypto._packed import Packed, b64url_packed
from bastion.crypto._util import derive_key
from bastion.errors import KeyManagementError

__all__ = ["NONCE_SIZE", "TAG_SIZE", "CellCipher", "associated_data"]

NONCE_SIZE = 12
TAG_SIZE = 16


def associated_data(key_id: str, column: str) -> bytes:
    """The associated data that binds a ciphertext to its data key and column."""
    return f"bastion.encrypt.v1|{key_id}|{column}".encode()


class CellCipher:
    """AES-256-GCM over single values with a key derived from a data key.

    Parameters
    ----------
    data_key
        32 bytes of data-key material (never logged; the repr shows only ``key_id``).
    key_id
        Public id of the data key, used in error messages and the associated data.
    """

    __slots__ = ("_aead", "key_id")

    def __init__(self, data_key: bytes, *, key_id: str) -> None:
        if len(data_key) != 32:
            raise KeyManagementError(f"A data key must be 32 bytes; got {len(data_key)}.")
        key = derive_key(data_key, "bastion/encrypt/aes-256-gcm/v1")
        self._aead = AESGCM(key)
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"CellCipher(key_id={self.key_id!r})"

    def encrypt(self, plaintext: bytes, *, column: str) -> bytes:
        """Encrypt one value; a fresh random nonce each call."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data(self.key_id, column))

    def encrypt_many(self, values: Sequence[bytes], *, column: str) -> list[bytes]:
        """Encrypt many values (one ``AESGCM`` call each), each under its own random nonce.

        The nonces come from one OS draw for all values, cut into 12-byte pieces (never reused).
        """
        pool = os.urandom(NONCE_SIZE * len(values))
        nonces = [pool[i : i + NONCE_SIZE] for i in range(0, len(pool), NONCE_SIZE)]
        ad = associated_data(self.key_id, column)
        enc = self._aead.encrypt
        return [n + enc(n, v, ad) for n, v in zip(nonces, values, strict=True)]

    def encrypt_b64(self, values: Packed, *, column: str) -> Packed:
        """Encrypt a whole packed column; each output is unpadded base64url text of ``nonce || ciphertext || tag``.

        One ``cryptography`` AES-GCM call per value (what :meth:`encrypt` gives, so :meth:`decrypt` reads it);
        throughput comes from running batches in parallel processes, never from a hand-written mode.
        """
        return b64url_packed(self.encrypt_many(values.to_list(), column=column))

    def decrypt(self, blob: bytes, *, column: str) -> bytes:
        """Decrypt one value; a wrong key, column or a corrupted value is a ``KeyManagementError``."""
        return self.decrypt_many([blob], column=column)[0]

    def decrypt_many(self, blobs: Sequence[bytes], *, column: str) -> list[bytes]:
        """Decrypt many values, failing on the first that does not authenticate."""
        ad = associated_data(self.key_id, column)
        dec = self._aead.decrypt
        out: list[bytes] = []
        for i, b in enumerate(blobs):
            if len(b) < NONCE_SIZE + TAG_SIZE:
                raise KeyManagementError(
                    f"Encrypted value {i} of column '{column}' is {len(b)} bytes, shorter than a ciphertext "
                    f"({NONCE_SIZE + TAG_SIZE} bytes at least): the data is truncated or not encrypted."
                )
            try:
                out.append(dec(b[:NONCE_SIZE], b[NONCE_SIZE:], ad))
            except InvalidTag as e:
                raise KeyManagementError(
                    f"Encrypted value {i} of column '{column}' does not authenticate under data key "
                    f"{self.key_id}: the key is wrong, or the value was corrupted or moved from another "
                    "column. Check that you use the project's master key."
                ) from e
        return out
