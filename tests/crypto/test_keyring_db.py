"""Data keys in the shared metadata database: two folders on one database share them with the same
key-encryption key; a wrong KEK, an edited row, a row moved to another deployment are refused; a legacy
``data-keys.json`` is imported once, audited."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bastion.crypto._util import b64d, b64e
from bastion.crypto.keys import Keyring, LocalMasterKey, keyring_path, project_data_keyring
from bastion.errors import KeyManagementError
from bastion.project import init_project
from bastion.store.schema import data_keys


def _kek(seed: bytes = b"k" * 32) -> LocalMasterKey:
    return LocalMasterKey(seed, source="test key")


def test_a_key_made_in_one_folder_unwraps_in_the_other(two_folders: Any) -> None:
    a, b = two_folders
    made = project_data_keyring(a, _kek()).get_or_create("encrypt", "patients")
    ring_b = project_data_keyring(b, _kek())
    assert ring_b.get(made.key_id).material == made.material
    assert ring_b.get_or_create("encrypt", "patients").key_id == made.key_id  # found, not made twice
    # nothing on either disk: the database holds only wrapped material
    assert not keyring_path(a.settings.key_path).exists() and not keyring_path(b.settings.key_path).exists()
    with a.db.read() as conn:
        row = conn.execute(select(data_keys)).one()
    assert made.material.hex() not in row.wraps_json and list(json.loads(row.wraps_json)) == [_kek().key_id]
    created = [e for e in a.audit.entries() if e.action == "keys.data.create"]
    assert [e.subject for e in created] == [made.key_id]


def test_a_ring_read_earlier_sees_a_key_made_later_elsewhere(two_folders: Any) -> None:
    a, b = two_folders
    ring_b = project_data_keyring(b, _kek())  # opened before the key exists
    made = project_data_keyring(a, _kek()).get_or_create("tokenize", "global")
    assert ring_b.get(made.key_id).material == made.material


def test_wrong_kek_is_a_clear_error(two_folders: Any) -> None:
    a, b = two_folders
    made = project_data_keyring(a, _kek()).get_or_create("encrypt", "d")
    other = _kek(b"o" * 32)
    with pytest.raises(KeyManagementError, match=f"wrapped by master key.*{_kek().key_id}.*is {other.key_id}"):
        project_data_keyring(b, other).get(made.key_id)


@pytest.mark.parametrize("column", ["purpose", "scope", "wraps", "swap"])
def test_an_edited_key_row_is_detected(two_folders: Any, column: str) -> None:
    a, b = two_folders
    ring = project_data_keyring(a, _kek())
    k1 = ring.get_or_create("encrypt", "d1")
    k2 = ring.get_or_create("encrypt", "d2")
    with a.db.write() as conn:
        rows = {r.key_id: r for r in conn.execute(select(data_keys))}
        if column == "purpose":
            conn.execute(update(data_keys).where(data_keys.c.key_id == k1.key_id).values(purpose="tokenize"))
        elif column == "scope":
            conn.execute(update(data_keys).where(data_keys.c.key_id == k1.key_id).values(scope="d2"))
        elif column == "wraps":  # a flipped byte in the ciphertext
            wraps = json.loads(rows[k1.key_id].wraps_json)
            mk = next(iter(wraps))
            raw = bytearray(b64d(wraps[mk]))
            raw[-1] ^= 1
            wraps[mk] = b64e(bytes(raw))
            conn.execute(update(data_keys).where(data_keys.c.key_id == k1.key_id).values(wraps_json=json.dumps(wraps)))
        else:  # k2's (valid) wrap pasted into k1's row: bound to another key id and scope
            conn.execute(update(data_keys).where(data_keys.c.key_id == k1.key_id)
                         .values(wraps_json=rows[k2.key_id].wraps_json))
    with pytest.raises(KeyManagementError, match="altered"):
        project_data_keyring(b, _kek()).get(k1.key_id)
    assert project_data_keyring(b, _kek()).get(k2.key_id).material == k2.material  # the other row still works


def test_a_row_copied_into_another_deployment_does_not_unwrap(two_folders: Any, tmp_path: Path) -> None:
    a, _ = two_folders
    made = project_data_keyring(a, _kek()).get_or_create("encrypt", "d")
    other = init_project(tmp_path / "c", database_url=f"sqlite:///{tmp_path / 'other.db'}")
    project_data_keyring(other, _kek()).get_or_create("encrypt", "x")  # the other deployment has its own id
    with a.db.read() as conn:
        row = conn.execute(select(data_keys).where(data_keys.c.key_id == made.key_id)).one()
    with other.db.write() as conn:
        conn.execute(data_keys.insert().values(**row._mapping))
    with pytest.raises(KeyManagementError, match="another deployment"):
        project_data_keyring(other, _kek()).get(made.key_id)
    other.close()


def test_legacy_file_is_imported_once_and_audited(two_folders: Any) -> None:
    a, b = two_folders
    path = keyring_path(a.settings.key_path)
    legacy = Keyring(path, _kek())  # what an older Bastion kept beside the key file
    old = legacy.get_or_create("encrypt", "d")
    assert path.is_file()
    ring = project_data_keyring(a, _kek())
    assert ring.get(old.key_id).material == old.material
    assert not path.exists() and path.with_name(path.name + ".imported").is_file()
    imports = [e for e in a.audit.entries() if e.action == "keys.data.import"]
    assert len(imports) == 1 and imports[0].details["imported"] == [old.key_id]
    # the other folder sees it; opening again imports nothing more
    assert project_data_keyring(b, _kek()).get(old.key_id).material == old.material
    project_data_keyring(a, _kek())
    assert len([e for e in a.audit.entries() if e.action == "keys.data.import"]) == 1
    assert [e.key_id for e in Keyring.list_entries(path, project=a)] == [old.key_id]


def test_legacy_file_under_another_master_key_is_not_imported(two_folders: Any) -> None:
    a, _ = two_folders
    path = keyring_path(a.settings.key_path)
    Keyring(path, _kek(os.urandom(32))).get_or_create("encrypt", "d")
    with pytest.raises(KeyManagementError, match="open the project once with that master key"):
        project_data_keyring(a, _kek())
    assert path.is_file()  # kept for the right key
    assert not [e for e in a.audit.entries() if e.action == "keys.data.import"]
