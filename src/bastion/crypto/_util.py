"""Small helpers shared by the crypto modules: base64 text, HKDF derivation, key ids.

Private: callers use the public classes in ``aead``, ``tokenize`` and ``keys``.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.errors import KeyManagementError

__all__ = ["b64d", "b64e", "derive_key", "fingerprint"]

_SALT = b"bastion.hkdf.v1"


def b64e(data: bytes) -> str:
    """URL-safe base64 without padding (compact and safe in file names and CSV)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str | bytes, *, what: str = "value") -> bytes:
    """Decode :func:`b64e` output (padding optional); a malformed input is a ``KeyManagementError``."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    raw = raw.strip()
    try:
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as e:
        raise KeyManagementError(f"The {what} is not valid base64url text ({e}).") from e


def derive_key(root: bytes, purpose: str, *, length: int = 32) -> bytes:
    """Derive an independent per-purpose key from ``root`` with HKDF-SHA256."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=purpose.encode("utf-8"))
    return hkdf.derive(root)


def fingerprint(key: bytes, prefix: str) -> str:
    """A public identifier of a key (one-way, 64 bits); safe to log and to write in reports."""
    return f"{prefix}-{derive_key(key, 'bastion/key-id/v1', length=8).hex()}"
