"""Master key in a key file (mode 0600), encrypted with a passphrase (scrypt + AES-256-GCM).

A file without a passphrase is a development mode that must be asked for explicitly.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bastion.crypto._util import b64d, b64e
from bastion.crypto.keys._local import MASTER_KEY_SIZE, LocalMasterKey
from bastion.errors import KeyManagementError

__all__ = ["KEY_FILE_KIND", "FileKeyProvider", "create_key_file", "write_key_file"]

KEY_FILE_KIND = "bastion.master-key"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_AD = b"bastion.master-key.v1"


def _kdf(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(
        passphrase.encode("utf-8")
    )


def _document(master_key: bytes, passphrase: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "kind": KEY_FILE_KIND,
        "key_id": LocalMasterKey(master_key, source="new").key_id,
    }
    if passphrase is None:
        doc.update(protected=False, key=b64e(master_key))
        return doc
    if not passphrase:
        raise KeyManagementError("The passphrase is empty; give a non-empty one or use --no-passphrase.")
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    kek = _kdf(passphrase, salt, _SCRYPT)
    ct = AESGCM(kek).encrypt(nonce, master_key, _AD)
    doc.update(
        protected=True,
        kdf={"name": "scrypt", "salt": b64e(salt), **_SCRYPT},
        cipher="aes-256-gcm",
        nonce=b64e(nonce),
        ciphertext=b64e(ct),
    )
    return doc


def write_key_file(path: Path, master_key: bytes, passphrase: str | None, *, overwrite: bool = False) -> str:
    """Write ``master_key`` to ``path`` atomically with mode 0600; returns the key id."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeyManagementError(
            f"A key file already exists at {path}; refusing to overwrite it (the data it protects would be "
            "lost). Use `bastion keys data rotate` to change the master key."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    doc = _document(master_key, passphrase)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return str(doc["key_id"])


def create_key_file(path: Path, passphrase: str | None) -> FileKeyProvider:
    """Create a new random master key in ``path`` and return its provider."""
    key = secrets.token_bytes(MASTER_KEY_SIZE)
    write_key_file(path, key, passphrase)
    return FileKeyProvider(path, passphrase)


class FileKeyProvider(LocalMasterKey):
    """Master key read from a key file; ``passphrase`` is needed unless the file was made without one."""

    __slots__ = ("path", "protected")

    def __init__(self, path: Path | str, passphrase: str | None = None) -> None:
        self.path = Path(path)
        doc = self._read()
        self.protected = bool(doc.get("protected"))
        key = self._open(doc, passphrase)
        super().__init__(key, source=f"key file {self.path}")
        if doc.get("key_id") and doc["key_id"] != self.key_id:
            raise KeyManagementError(f"The key file {self.path} is corrupted: its key id does not match.")

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            raise KeyManagementError(
                f"No master key file at {self.path}. Run `bastion keys init`, or set BASTION_MASTER_KEY."
            )
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise KeyManagementError(
                f"The key file {self.path} is readable by other users (mode {mode:o}); run "
                f"`chmod 600 {self.path}` and try again."
            )
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise KeyManagementError(f"The key file {self.path} cannot be read as JSON ({e}).") from e
        if not isinstance(doc, dict) or doc.get("kind") != KEY_FILE_KIND or doc.get("schema_version") != 1:
            raise KeyManagementError(f"{self.path} is not a Bastion master key file (schema_version 1).")
        return doc

    def _open(self, doc: dict[str, Any], passphrase: str | None) -> bytes:
        if not doc.get("protected"):
            return b64d(str(doc.get("key", "")), what="master key")
        if not passphrase:
            raise KeyManagementError(
                f"The key file {self.path} is protected by a passphrase; set BASTION_KEY_PASSPHRASE or "
                "enter it when asked."
            )
        try:
            kdf = doc["kdf"]
            params = {"n": int(kdf["n"]), "r": int(kdf["r"]), "p": int(kdf["p"])}
            kek = _kdf(passphrase, b64d(str(kdf["salt"]), what="salt"), params)
            return AESGCM(kek).decrypt(
                b64d(str(doc["nonce"]), what="nonce"), b64d(str(doc["ciphertext"]), what="ciphertext"), _AD
            )
        except InvalidTag as e:
            raise KeyManagementError(
                f"Wrong passphrase for the key file {self.path} (or the file was altered)."
            ) from e
        except (KeyError, TypeError, ValueError) as e:
            raise KeyManagementError(f"The key file {self.path} is malformed ({e}).") from e
