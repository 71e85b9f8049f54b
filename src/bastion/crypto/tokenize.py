"""Deterministic, reversible tokens (AES-SIV, RFC 5297) and keyed hashes (HMAC-SHA256).

Equal inputs give equal tokens under one key and domain, so joins and group-bys still work on protected data.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from bastion.crypto._packed import Packed, b64url_packed
from bastion.crypto._util import derive_key
from bastion.errors import KeyManagementError

__all__ = ["KeyedHasher", "Tokenizer"]


def _domain_ad(domain: str) -> bytes:
    return f"bastion.tokenize.v1|{domain}".encode()


class Tokenizer:
    """AES-256-SIV tokenizer for one token domain.

    Parameters
    ----------
    root_key
        32-byte tokenization data key; the SIV key (64 bytes) is derived from it per domain with HKDF.
    key_id
        Public id of the data key (for messages only).
    domain
        Values tokenized in the same domain can be joined; different domains give unrelated tokens.
    """

    __slots__ = ("_ad", "_key", "_siv", "domain", "key_id")

    def __init__(self, root_key: bytes, *, key_id: str, domain: str = "default") -> None:
        if len(root_key) != 32:
            raise KeyManagementError(f"A tokenization key must be 32 bytes; got {len(root_key)}.")
        self._key = derive_key(root_key, f"bastion/tokenize/aes-256-siv/v1/{domain}", length=64)
        self._siv = AESSIV(self._key)
        self._ad = _domain_ad(domain)
        self.key_id = key_id
        self.domain = domain

    def __repr__(self) -> str:
        return f"Tokenizer(key_id={self.key_id!r}, domain={self.domain!r})"

    @property
    def associated_data(self) -> bytes:
        """The associated data (one S2V component) bound into every token of this domain."""
        return self._ad

    def tokenize(self, value: bytes) -> bytes:
        """Token of one value (deterministic)."""
        return self._siv.encrypt(value, [self._ad])

    def tokenize_many(self, values: Sequence[bytes]) -> list[bytes]:
        """Tokens of many values (one ``AESSIV`` call each; equal values give equal tokens)."""
        enc, ad = self._siv.encrypt, [self._ad]
        return [enc(v, ad) for v in values]

    def tokenize_b64(self, values: Packed) -> Packed:
        """Tokens of a whole packed column as unpadded base64url text (each what ``b64e(tokenize(v))`` gives).

        One ``cryptography`` AES-SIV call per value; throughput comes from running batches in parallel
        processes (see :class:`bastion.engine.LocalEngine`), never from a hand-written mode.
        """
        return b64url_packed(self.tokenize_many(values.to_list()))

    def detokenize(self, token: bytes) -> bytes:
        """The original value of one token."""
        return self.detokenize_many([token])[0]

    def detokenize_many(self, tokens: Sequence[bytes]) -> list[bytes]:
        """Original values; a token from another key or domain, or a corrupted one, is refused."""
        dec = self._siv.decrypt
        ad = [self._ad]
        out: list[bytes] = []
        for i, t in enumerate(tokens):
            try:
                out.append(dec(t, ad))
            except (InvalidTag, ValueError) as e:
                raise KeyManagementError(
                    f"Token {i} does not decrypt under data key {self.key_id} (domain '{self.domain}'): "
                    "the key is wrong or the token was corrupted. Use the project's master key."
                ) from e
        return out


class KeyedHasher:
    """HMAC-SHA256 of values under a derived key: one-way, but not guessable without the key."""

    __slots__ = ("_key", "key_id")

    def __init__(self, root_key: bytes, *, key_id: str, domain: str = "default") -> None:
        if len(root_key) != 32:
            raise KeyManagementError(f"A hashing key must be 32 bytes; got {len(root_key)}.")
        self._key = derive_key(root_key, f"bastion/hash/hmac-sha256/v1/{domain}")
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"KeyedHasher(key_id={self.key_id!r})"

    def hash(self, value: bytes) -> str:
        """Hex HMAC-SHA256 of one value."""
        return hmac.new(self._key, value, hashlib.sha256).hexdigest()

    def hash_many(self, values: Sequence[bytes]) -> list[str]:
        """Hex HMAC-SHA256 of many values."""
        key = self._key
        return [hmac.new(key, v, hashlib.sha256).hexdigest() for v in values]
