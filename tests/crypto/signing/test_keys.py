"""Signing keys: encrypted key files, keyring life cycle (init/rotate/revoke), audit, loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.crypto.signing import (
    init_signing_key,
    list_signing_keys,
    load_signing_key,
    revoke_signing_key,
    rotate_signing_key,
)
from bastion.crypto.signing.keys import decrypt_private_key, encrypt_private_key, signing_dir
from bastion.errors import KeyManagementError

from .conftest import CA, pem_cert, pem_private

FAST = 2**10  # scrypt cost for tests only


def test_key_file_round_trip(p384) -> None:
    data = encrypt_private_key(p384, "correct horse", name="k", scrypt_n=FAST)
    doc = json.loads(data)
    assert doc["version"] == 1 and doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "AES-256-GCM"
    # The private scalar is nowhere in clear.
    raw = p384.private_numbers().private_value.to_bytes(48, "big")
    assert raw not in data and raw.hex().encode() not in data
    back = decrypt_private_key(data, "correct horse")
    assert back.private_numbers() == p384.private_numbers()


@pytest.mark.parametrize(
    ("edit", "passphrase", "message"),
    [
        (lambda d: d, "wrong", "wrong passphrase"),
        (lambda d: d.update(name="other"), "pw", "altered"),
        (lambda d: d["kdf"].update(n=2**11), "pw", "altered"),
        (lambda d: d.update(version=2), "pw", "version 2"),
        (lambda d: d["kdf"].update(n=2**30), "pw", "out-of-range"),
        (lambda d: d.update(format="pem"), "pw", "not a Bastion signing key"),
    ],
)
def test_key_file_refusals(p256, edit, passphrase: str, message: str) -> None:
    doc = json.loads(encrypt_private_key(p256, "pw", name="k", scrypt_n=FAST))
    edit(doc)
    with pytest.raises(KeyManagementError, match=message):
        decrypt_private_key(json.dumps(doc).encode(), passphrase)


def test_life_cycle_with_audit(project) -> None:
    rec = init_signing_key(project, "release", passphrase="pw", curve="P-384")
    assert rec.status == "active" and rec.curve == "P-384"
    key_file = signing_dir(project) / str(rec.key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" not in key_file.read_bytes()
    new = rotate_signing_key(project, "release", passphrase="pw")
    assert new.fingerprint != rec.fingerprint and new.curve == "P-384"
    statuses = {r.fingerprint: r.status for r in list_signing_keys(project)}
    assert statuses == {rec.fingerprint: "rotated", new.fingerprint: "active"}
    assert load_signing_key(project, "release", passphrase="pw", env={}).fingerprint == new.fingerprint
    revoked = revoke_signing_key(project, "release", reason="laptop stolen")
    assert revoked.status == "revoked" and not (signing_dir(project) / str(new.key_file)).exists()
    with pytest.raises(KeyManagementError, match="no active version"):
        load_signing_key(project, "release", passphrase="pw", env={})
    actions = [e.action for e in project.audit.entries(newest_first=False)]
    assert [a for a in actions if a.startswith("keys.signing")] == [
        "keys.signing.init", "keys.signing.rotate", "keys.signing.revoke"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: init_signing_key(p, "bad name!", passphrase="pw"), "Key name"),
        (lambda p: init_signing_key(p, "k", passphrase=""), "passphrase is required"),
        (lambda p: init_signing_key(p, "k", passphrase="pw", curve="P-521"), "Curve"),
        (lambda p: rotate_signing_key(p, "nope", passphrase="pw"), "No signing key named"),
        (lambda p: revoke_signing_key(p, "nope", reason=" "), "needs a reason"),
        (lambda p: load_signing_key(p, env={}), "No active signing key"),
    ],
)
def test_keyring_errors(project, call, message: str) -> None:
    with pytest.raises(KeyManagementError, match=message):
        call(project)


def test_duplicate_name_and_wrong_passphrase(project) -> None:
    init_signing_key(project, "k", passphrase="pw")
    with pytest.raises(KeyManagementError, match="exists"):
        init_signing_key(project, "k", passphrase="pw")
    with pytest.raises(KeyManagementError, match="wrong passphrase"):
        load_signing_key(project, passphrase="nope", env={})
    init_signing_key(project, "k2", passphrase="pw")
    with pytest.raises(KeyManagementError, match="Several active"):
        load_signing_key(project, passphrase="pw", env={})


def test_load_from_env_pem_and_file(tmp_path: Path, p256) -> None:
    pem = pem_private(p256).decode()
    assert load_signing_key(env={"BASTION_SIGNING_KEY": pem}).fingerprint == load_signing_key(
        key_file=_write(tmp_path / "k.pem", pem.encode()), env={}).fingerprint
    enc = p256.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(b"pw"))
    path = _write(tmp_path / "enc.pem", enc)
    assert load_signing_key(key_file=path, env={"BASTION_KEY_PASSPHRASE": "pw"}).name == "enc"
    assert load_signing_key(env={"BASTION_SIGNING_KEY_FILE": str(path), "BASTION_KEY_PASSPHRASE": "pw"})
    with pytest.raises(KeyManagementError, match="passphrase"):
        load_signing_key(key_file=path, env={})


def test_load_refuses_non_ec_and_mismatched_certificate(tmp_path: Path, p256, other_key, ca: CA) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyManagementError, match="EC keys"):
        load_signing_key(env={"BASTION_SIGNING_KEY": ed.decode()})
    chain = _write(tmp_path / "chain.pem", pem_cert(ca.issue(other_key), ca.cert))
    with pytest.raises(KeyManagementError, match="not for this signing key"):
        load_signing_key(env={"BASTION_SIGNING_KEY": pem_private(p256).decode()}, certificate_chain=chain)
    good = _write(tmp_path / "good.pem", pem_cert(ca.issue(p256), ca.cert))
    key = load_signing_key(env={"BASTION_SIGNING_KEY": pem_private(p256).decode()}, certificate_chain=good)
    assert len(key.certificate_chain) == 2


def test_repr_hides_key(p256) -> None:
    from bastion.crypto.signing import SigningKey

    assert "private" not in repr(SigningKey("k", p256)).lower()
    assert isinstance(SigningKey("k", p256).public_key, ec.EllipticCurvePublicKey)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
