"""Interop with the upstream OpenSSF `model_signing` package (test extra), offline.

Upstream's `verify key` / `verify certificate` commands accept Bastion's bundles, and Bastion verifies
bundles made by upstream's `sign key` / `sign certificate`. Bastion is stricter where upstream is lax.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.crypto.signing import SigningKey, TrustStore, sign_model, verify_model
from bastion.errors import VerificationError

from .conftest import CA, NOW, pem_cert, pem_private, pem_public

UPSTREAM = str(Path(sys.executable).parent / "model_signing")


def _upstream(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([UPSTREAM, *map(str, args)], capture_output=True, text=True, timeout=60)


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.mark.parametrize("curve_key", ["p256", "p384"])
def test_upstream_verify_key_accepts_bastion(model: Path, tmp_path: Path, curve_key: str, request) -> None:
    key = request.getfixturevalue(curve_key)
    sig = _write(tmp_path / "model.sig", json.dumps(sign_model(model, SigningKey("k", key))))
    pub = _write(tmp_path / "k.pub", pem_public(key))
    ok = _upstream("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert ok.returncode == 0, ok.stderr
    assert "Verification succeeded" in ok.stdout
    if curve_key == "p384":
        return
    (model / "weights.bin").write_bytes(b"tampered")  # and upstream really checks the digests
    bad = _upstream("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert bad.returncode != 0 and "weights.bin" in bad.stderr


def test_upstream_verify_certificate_accepts_bastion(model: Path, tmp_path: Path, ca: CA, p256) -> None:
    key = SigningKey("c", p256, (ca.issue(p256),))
    sig = _write(tmp_path / "model.sig", json.dumps(sign_model(model, key)))
    root = _write(tmp_path / "root.pem", pem_cert(ca.cert))
    res = _upstream("verify", "certificate", model, "--signature", sig, "--certificate_chain", root)
    assert res.returncode == 0, res.stderr


def test_bastion_verifies_upstream_key_signature(model: Path, tmp_path: Path, p384, other_key) -> None:
    priv = _write(tmp_path / "k.pem", pem_private(p384))
    sig = tmp_path / "up.sig"
    res = _upstream("sign", "key", model, "--private_key", priv, "--signature", sig)
    assert res.returncode == 0, res.stderr
    bundle = json.loads(sig.read_text())
    out = verify_model(model, bundle, TrustStore.from_pem(public_keys=[pem_public(p384)]))
    assert out.files_checked == 5 and out.model_name == "model"
    with pytest.raises(VerificationError):
        verify_model(model, bundle, TrustStore.from_pem(public_keys=[pem_public(other_key)]))


def test_bastion_verifies_upstream_certificate_signature(model: Path, tmp_path: Path, ca: CA, p256) -> None:
    priv = _write(tmp_path / "k.pem", pem_private(p256))
    leaf = _write(tmp_path / "leaf.pem", pem_cert(ca.issue(p256, email="ml@example.com")))
    root = _write(tmp_path / "root.pem", pem_cert(ca.cert))
    sig = tmp_path / "up.sig"
    res = _upstream("sign", "certificate", model, "--private_key", priv, "--signing_certificate", leaf,
                    "--certificate_chain", root, "--signature", sig)
    assert res.returncode == 0, res.stderr
    out = verify_model(model, json.loads(sig.read_text()),
                       TrustStore(ca_certificates=(ca.cert,), allowed_signers=("ml@example.com",)))
    assert out.signer.kind == "certificate" and out.signer.identity == "ml@example.com"


def test_stricter_than_upstream_on_expired_certificates(model: Path, tmp_path: Path, ca: CA, p256) -> None:
    expired = ca.issue(p256, not_before=NOW - dt.timedelta(days=5), not_after=NOW - dt.timedelta(days=1))
    bundle = sign_model(model, SigningKey("c", p256, (expired,)))
    sig = _write(tmp_path / "model.sig", json.dumps(bundle))
    root = _write(tmp_path / "root.pem", pem_cert(ca.cert))
    lax = _upstream("verify", "certificate", model, "--signature", sig, "--certificate_chain", root)
    assert lax.returncode == 0  # upstream checks validity at the certificate's start, so it accepts
    with pytest.raises(VerificationError, match="expired"):
        verify_model(model, bundle, TrustStore(ca_certificates=(ca.cert,)))
