"""Trust stores: built only from what the operator gives, parsed strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from bastion.crypto.signing import TrustStore, init_signing_key, revoke_signing_key
from bastion.crypto.signing.keys import signing_dir
from bastion.errors import ConfigError

from .conftest import CA, pem_cert, pem_public


def test_from_pem_paths_and_text(tmp_path: Path, p256, p384, ca: CA) -> None:
    (tmp_path / "release.pub").write_bytes(pem_public(p256))
    (tmp_path / "root.pem").write_bytes(pem_cert(ca.cert))
    t = TrustStore.from_pem(public_keys=[tmp_path / "release.pub", pem_public(p384).decode()],
                            ca_certificates=[str(tmp_path / "root.pem")])
    assert [k.name for k in t.keys] == ["release", "key2"]
    assert t.ca_certificates == (ca.cert,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"public_keys": [b"not a key"]}, "not a PEM public key"),
        ({"public_keys": ["/nonexistent/k.pub"]}, "Cannot read"),
        ({"ca_certificates": [b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n"]}, "no PEM"),
    ],
)
def test_from_pem_errors(kwargs, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrustStore.from_pem(**kwargs)


def test_non_ec_keys_refused() -> None:
    from cryptography.hazmat.primitives import serialization

    pem = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigError, match="elliptic-curve"):
        TrustStore.from_pem(public_keys=[pem])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"keys": "k.pub"}, "list of file paths"),
        ({"allowed_signers": "alice"}, "list of strings"),
        ({"trust_all": True}, "Unknown signing trust"),
    ],
)
def test_from_config_errors(config, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrustStore.from_config(config)


def test_from_config_relative_paths(tmp_path: Path, p256) -> None:
    (tmp_path / "k.pub").write_bytes(pem_public(p256))
    t = TrustStore.from_config({"keys": ["k.pub"], "allowed_signers": ["key:k"]}, base_dir=tmp_path)
    assert len(t.keys) == 1 and t.allowed_signers == ("key:k",)


def test_from_project_reads_keyring_status_and_ca_dir(project, ca: CA) -> None:
    assert TrustStore.from_project(project).empty
    init_signing_key(project, "release", passphrase="pw")
    revoke_signing_key(project, "release", reason="leaked")
    (signing_dir(project) / "ca").mkdir()
    (signing_dir(project) / "ca" / "root.pem").write_bytes(pem_cert(ca.cert))
    t = TrustStore.from_project(project)
    assert [(k.name, k.status) for k in t.keys] == [("release", "revoked")]
    assert t.ca_certificates == (ca.cert,)


def test_merged(p256, p384, ca: CA) -> None:
    a = TrustStore.from_pem(public_keys=[pem_public(p256)], allowed_signers=["key:a"])
    b = TrustStore.from_pem(public_keys=[pem_public(p256), pem_public(p384)], ca_certificates=[pem_cert(ca.cert)])
    m = a.merged(b)
    assert len(m.keys) == 2 and m.ca_certificates == (ca.cert,) and m.allowed_signers == ("key:a",)
