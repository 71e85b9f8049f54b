"""Cryptography for Bastion: key providers and data keys, cell encryption, deterministic tokens, keyed hashes.

Built on ``cryptography`` (AES-GCM, AES-SIV, HKDF, scrypt); keys never reach logs or reports.
"""

from __future__ import annotations

from bastion.crypto.aead import CellCipher
from bastion.crypto.keys import (
    DataKey,
    DataKeyInfo,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    Keyring,
    KmsKeyProvider,
    LocalKms,
    create_key_file,
    keyring_path,
    resolve_provider,
    rotate_master_key,
)
from bastion.crypto.tokenize import KeyedHasher, Tokenizer

__all__ = [
    "CellCipher",
    "DataKey",
    "DataKeyInfo",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "KeyedHasher",
    "Keyring",
    "KmsKeyProvider",
    "LocalKms",
    "Tokenizer",
    "create_key_file",
    "keyring_path",
    "resolve_provider",
    "rotate_master_key",
]
