"""`bastion model sign|verify`, for registered versions and for plain paths with a bundle file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@pytest.fixture
def registered(project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli):
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "pw")
    src = tmp_path / "m"
    src.mkdir()
    (src / "w.bin").write_bytes(b"\x00" * 5000)
    (src / "config.json").write_text("{}")
    mv = project.log_model(src, name="m")
    assert cli("keys", "signing", "init", "release").exit_code == 0
    return project, mv, src


def test_sign_then_verify(registered, cli) -> None:
    _, mv, _ = registered
    r = cli("model", "sign", mv.ref, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["files"] == 2
    r = cli("model", "verify", mv.ref, "--json")
    assert r.exit_code == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["valid"] and status["signer"] == "key:release" and status["files_checked"] == 2
    r = cli("model", "verify", mv.ref)
    assert r.exit_code == 0 and "valid" in r.stdout


def test_verify_fails_with_exit_1(registered, cli) -> None:
    _, mv, _ = registered
    r = cli("model", "verify", mv.ref, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["valid"] is False
    cli("model", "sign", mv.ref)
    cli("keys", "signing", "revoke", "release", "--reason", "test")
    r = cli("model", "verify", mv.ref)
    assert r.exit_code == 1 and "revoked" in r.stderr


def test_verify_path_with_bundle_and_public_key(registered, cli, tmp_path: Path) -> None:
    _, mv, src = registered
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (tmp_path / "k.pem").write_bytes(pem)
    (tmp_path / "k.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    r = cli("model", "sign", mv.ref, "--key-file", str(tmp_path / "k.pem"), "--json")
    assert r.exit_code == 0, r.stderr
    (tmp_path / "sig.json").write_text(json.dumps(json.loads(r.stdout)["bundle"]))
    args = ("model", "verify", str(src), "--bundle", str(tmp_path / "sig.json"))
    assert cli(*args).exit_code == 1  # key not in the keyring: not trusted
    r = cli(*args, "--public-key", str(tmp_path / "k.pub"), "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    (src / "extra.py").write_text("import os")
    r = cli(*args, "--public-key", str(tmp_path / "k.pub"), "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["extra"] == ["extra.py"]


def test_path_without_bundle_is_usage_error(registered, cli) -> None:
    _, _, src = registered
    r = cli("model", "verify", str(src))
    assert r.exit_code == 2 and "--bundle" in r.stderr
