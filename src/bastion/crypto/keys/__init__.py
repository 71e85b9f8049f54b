"""Key management: master-key providers (file, environment, KMS) and the wrapped data-key ring.

``resolve_provider`` picks the environment variable first, then the project's key file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.crypto.keys._local import MASTER_KEY_SIZE, LocalMasterKey
from bastion.crypto.keys.env import ENV_VAR, EnvKeyProvider
from bastion.crypto.keys.file import FileKeyProvider, create_key_file, write_key_file
from bastion.crypto.keys.interface import KeyProvider
from bastion.crypto.keys.keyring import DataKey, DataKeyInfo, Keyring
from bastion.crypto.keys.kms import KmsClient, KmsKeyProvider, LocalKms
from bastion.errors import KeyManagementError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = [
    "ENV_VAR",
    "PASSPHRASE_ENV",
    "DataKey",
    "DataKeyInfo",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "Keyring",
    "KmsClient",
    "KmsKeyProvider",
    "LocalKms",
    "LocalMasterKey",
    "RotationResult",
    "create_key_file",
    "keyring_path",
    "project_data_keyring",
    "resolve_provider",
    "rotate_master_key",
    "rotate_project_master_key",
]

PASSPHRASE_ENV = "BASTION_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def keyring_path(key_path: Path) -> Path:
    """Where the data key ring lives for a master key file path."""
    return Path(key_path).parent / "data-keys.json"


def project_data_keyring(project: ProjectHandle, provider: KeyProvider) -> Keyring:
    """The project's data keys in its metadata database, unwrapped through ``provider`` (this machine's master
    key); a ``data-keys.json`` left beside the key file is imported once (audited)."""
    return Keyring(keyring_path(project.settings.key_path), provider, project=project)


def resolve_provider(
    key_path: Path, *, passphrase: str | None = None, environ: Mapping[str, str] | None = None
) -> KeyProvider:
    """The master key: ``BASTION_MASTER_KEY`` if set, else the key file (passphrase from the argument or
    ``BASTION_KEY_PASSPHRASE``)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        return EnvKeyProvider(environ=env)
    return FileKeyProvider(key_path, passphrase if passphrase is not None else env.get(PASSPHRASE_ENV))


@dataclass(frozen=True)
class RotationResult:
    """What a master-key rotation did (ids only)."""

    old_key_id: str
    new_key_id: str
    data_keys: int

    def to_dict(self) -> dict[str, object]:
        return {
            "schema_version": 1,
            "old_master_key_id": self.old_key_id,
            "new_master_key_id": self.new_key_id,
            "data_keys_rewrapped": self.data_keys,
        }


def rotate_master_key(
    key_path: Path,
    old: KeyProvider,
    *,
    new_passphrase: str | None,
    new_provider: KeyProvider | None = None,
    project: ProjectHandle | None = None,
) -> RotationResult:
    """Re-wrap every data key under a new master key without touching the data.

    With ``new_provider`` (e.g. a new KMS key or environment key) the key file is left alone; otherwise a
    fresh random master key replaces the key file at ``key_path`` (passphrase ``new_passphrase``). With
    ``project`` the ring is the project's, in its database.
    """
    ring = Keyring(keyring_path(key_path), old, project=project)
    new_key: bytes | None = None
    if new_provider is None:
        new_key = secrets.token_bytes(MASTER_KEY_SIZE)
        new_provider = LocalMasterKey(new_key, source=f"key file {key_path}")
    if new_provider.key_id == old.key_id:
        raise KeyManagementError("The new master key is the same as the old one; nothing to rotate.")
    count = ring.rewrap(new_provider)
    if new_key is not None:
        write_key_file(key_path, new_key, new_passphrase, overwrite=True)
    ring.drop_other_wraps(new_provider.key_id)
    return RotationResult(old.key_id, new_provider.key_id, count)


def rotate_project_master_key(
    project: ProjectHandle, old: KeyProvider, *, new_passphrase: str | None, new_provider: KeyProvider | None = None
) -> RotationResult:
    """:func:`rotate_master_key` for a project's key file, audited (``keys.data.rotate``) by the library."""
    result = rotate_master_key(
        project.settings.key_path, old, new_passphrase=new_passphrase, new_provider=new_provider, project=project
    )
    project.audited("keys.data.rotate", result.new_key_id, result.to_dict())
    return result
