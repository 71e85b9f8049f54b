from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from bastion.crypto.keys import (
    EnvKeyProvider,
    FileKeyProvider,
    Keyring,
    KmsKeyProvider,
    LocalKms,
    LocalMasterKey,
    create_key_file,
    keyring_path,
    resolve_provider,
    rotate_master_key,
)
from bastion.errors import KeyManagementError


def test_key_file_is_0600_and_round_trips(tmp_path):
    path = tmp_path / "keys" / "master.key"
    p = create_key_file(path, "correct horse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = FileKeyProvider(path, "correct horse")
    assert again.key_id == p.key_id
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1 and doc["protected"] is True and "key" not in doc


@pytest.mark.parametrize("passphrase", ["wrong", "correct hors", None])
def test_wrong_or_missing_passphrase_is_key_error(tmp_path, passphrase):
    path = tmp_path / "master.key"
    create_key_file(path, "correct horse")
    with pytest.raises(KeyManagementError, match="passphrase"):
        FileKeyProvider(path, passphrase)


def test_key_file_refused_when_group_readable(tmp_path):
    path = tmp_path / "master.key"
    create_key_file(path, "pw")
    os.chmod(path, 0o644)
    with pytest.raises(KeyManagementError, match="chmod 600"):
        FileKeyProvider(path, "pw")


def test_key_file_not_overwritten(tmp_path):
    path = tmp_path / "master.key"
    create_key_file(path, "pw")
    with pytest.raises(KeyManagementError, match="refusing to overwrite"):
        create_key_file(path, "pw")


def test_env_provider(monkeypatch):
    key = os.urandom(32)
    env = {"BASTION_MASTER_KEY": base64.b64encode(key).decode()}
    assert EnvKeyProvider(environ=env).key_id == LocalMasterKey(key, source="x").key_id
    with pytest.raises(KeyManagementError, match="32 bytes"):
        EnvKeyProvider(environ={"BASTION_MASTER_KEY": base64.b64encode(b"short").decode()})
    with pytest.raises(KeyManagementError, match="not set"):
        EnvKeyProvider(environ={})


def test_resolve_prefers_env(tmp_path):
    key = os.urandom(32)
    env = {"BASTION_MASTER_KEY": base64.b64encode(key).decode()}
    assert isinstance(resolve_provider(tmp_path / "none.key", environ=env), EnvKeyProvider)
    with pytest.raises(KeyManagementError, match="keys init"):
        resolve_provider(tmp_path / "none.key", environ={})


def test_keyring_wrong_master_key_is_clear(tmp_path):
    ring = Keyring(tmp_path / "dk.json", LocalMasterKey(os.urandom(32), source="a"))
    dk = ring.get_or_create("encrypt", "patients")
    other = Keyring(tmp_path / "dk.json", LocalMasterKey(os.urandom(32), source="b"))
    with pytest.raises(KeyManagementError, match="wrapped by master key"):
        other.get(dk.key_id)
    assert "material" not in repr(dk) and dk.material.hex() not in repr(dk)


def test_keyring_tampered_wrap_is_refused(tmp_path):
    mk = LocalMasterKey(os.urandom(32), source="a")
    ring = Keyring(tmp_path / "dk.json", mk)
    dk = ring.get_or_create("tokenize", "project")
    doc = json.loads((tmp_path / "dk.json").read_text())
    doc["keys"][0]["scope"] = "other"  # context no longer matches
    (tmp_path / "dk.json").write_text(json.dumps(doc))
    with pytest.raises(KeyManagementError, match="does not unwrap"):
        Keyring(tmp_path / "dk.json", mk).get(dk.key_id)


def test_rotation_rewraps_without_changing_data_keys(tmp_path):
    path = tmp_path / "master.key"
    old = create_key_file(path, "pw")
    ring = Keyring(keyring_path(path), old)
    dk = ring.get_or_create("encrypt", "patients")
    result = rotate_master_key(path, old, new_passphrase="pw2")
    assert result.data_keys == 1 and result.new_key_id != old.key_id
    new = FileKeyProvider(path, "pw2")
    assert Keyring(keyring_path(path), new).get(dk.key_id).material == dk.material
    with pytest.raises(KeyManagementError):
        Keyring(keyring_path(path), old).get(dk.key_id)
    assert [e.master_key_ids for e in Keyring.list_entries(keyring_path(path))] == [(new.key_id,)]


def test_kms_provider(tmp_path):
    kms = LocalKms()
    kms.create_key("bastion")
    ring = Keyring(tmp_path / "dk.json", KmsKeyProvider(kms, "bastion"))
    dk = ring.get_or_create("encrypt", "d")
    assert (
        Keyring(tmp_path / "dk.json", KmsKeyProvider(kms, "bastion")).get(dk.key_id).material == dk.material
    )
    with pytest.raises(KeyManagementError, match="no key named"):
        KmsKeyProvider(kms, "missing").wrap(b"x", context=b"")
