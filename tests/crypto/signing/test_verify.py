"""Verification is strict: each attack on a signed model is caught and named."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.crypto.signing import (
    ModelMismatchError,
    SigningKey,
    TrustedKey,
    TrustStore,
    sign_model,
    verify_model,
)
from bastion.crypto.signing.oms import PAYLOAD_TYPE, build_model_statement, pae
from bastion.errors import VerificationError

from .conftest import CA, NOW


def _trust(*keys: ec.EllipticCurvePrivateKey, status: str = "active", **kw: Any) -> TrustStore:
    return TrustStore(keys=tuple(TrustedKey(f"k{i}", k.public_key(), status=status) for i, k in enumerate(keys)),
                      **kw)


def test_valid_signature_verifies(model: Path, signing_key: SigningKey, p256) -> None:
    res = verify_model(model, sign_model(model, signing_key), _trust(p256))
    assert res.files_checked == 5 and res.signer.kind == "key" and res.signer.identity == "key:k0"


@pytest.mark.parametrize(
    ("attack", "missing", "extra", "mismatched"),
    [
        (lambda m: (m / "weights.bin").write_bytes(b"evil"), (), (), ("weights.bin",)),
        (lambda m: (m / "sub" / "tokenizer.txt").write_text("a b d\n"), (), (), ("sub/tokenizer.txt",)),
        (lambda m: (m / "sub" / "payload.pkl").write_bytes(b"x"), (), ("sub/payload.pkl",), ()),
        (lambda m: (m / "config.json").unlink(), ("config.json",), (), ()),
        (lambda m: shutil.rmtree(m / "sub"), ("sub/deeper/empty.bin", "sub/tokenizer.txt"), (), ()),
    ],
    ids=["tampered-file", "tampered-nested", "extra-file", "missing-file", "missing-folder"],
)
def test_model_changes_named_by_file(model: Path, signing_key: SigningKey, p256, attack, missing, extra,
                                     mismatched) -> None:
    bundle = sign_model(model, signing_key)
    attack(model)
    with pytest.raises(ModelMismatchError) as ei:
        verify_model(model, bundle, _trust(p256))
    assert (ei.value.missing, ei.value.extra, ei.value.mismatched) == (missing, extra, mismatched)
    for name in (*missing, *extra, *mismatched):
        assert name in str(ei.value)


def test_swapped_bundle_from_another_model(make_model, signing_key: SigningKey, p256) -> None:
    a, b = make_model("a"), make_model("b")
    (b / "weights.bin").write_bytes(b"different weights")
    with pytest.raises(ModelMismatchError, match=r"weights\.bin"):
        verify_model(a, sign_model(b, signing_key), _trust(p256))


def test_wrong_key(model: Path, signing_key: SigningKey, other_key) -> None:
    with pytest.raises(VerificationError, match="not in the trust store"):
        verify_model(model, sign_model(model, signing_key), _trust(other_key))


def test_bundle_without_hint_and_wrong_key(model: Path, signing_key: SigningKey, other_key) -> None:
    bundle = sign_model(model, signing_key)
    bundle["verificationMaterial"]["publicKey"] = {}
    with pytest.raises(VerificationError, match="does not verify"):
        verify_model(model, bundle, _trust(other_key))


def test_empty_trust_refuses(model: Path, signing_key: SigningKey) -> None:
    with pytest.raises(VerificationError, match="no public keys"):
        verify_model(model, sign_model(model, signing_key), TrustStore())


def test_revoked_key_refused_rotated_accepted(model: Path, signing_key: SigningKey, p256) -> None:
    bundle = sign_model(model, signing_key)
    assert verify_model(model, bundle, _trust(p256, status="rotated")).signer.key_status == "rotated"
    with pytest.raises(VerificationError, match="revoked"):
        verify_model(model, bundle, _trust(p256, status="revoked"))


def _payload(bundle: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def _set_payload(bundle: dict[str, Any], statement: dict[str, Any]) -> None:
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def test_edited_payload_refused(model: Path, signing_key: SigningKey, p256) -> None:
    bundle = sign_model(model, signing_key)
    st = _payload(bundle)
    st["predicate"]["resources"] = [r for r in st["predicate"]["resources"] if r["name"] != "config.json"]
    _set_payload(bundle, st)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_model(model, bundle, _trust(p256))


def test_signature_over_a_different_digest(model: Path, signing_key: SigningKey, p256) -> None:
    # A genuine signature by the trusted key, but over other digests: the model must not verify.
    bundle = sign_model(model, signing_key)
    st = _payload(bundle)
    files = {r["name"]: r["digest"] for r in st["predicate"]["resources"]}
    files["weights.bin"] = "00" * 32
    other = build_model_statement("model", files)
    payload = json.dumps(other).encode()
    sig = p256.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    with pytest.raises(ModelMismatchError, match=r"digest mismatch in weights\.bin"):
        verify_model(model, bundle, _trust(p256))


def test_signature_replayed_with_other_payload(model: Path, signing_key: SigningKey, p256) -> None:
    a = sign_model(model, signing_key)
    (model / "config.json").write_text("{}")
    b = sign_model(model, signing_key)
    a["dsseEnvelope"]["signatures"] = b["dsseEnvelope"]["signatures"]
    with pytest.raises(VerificationError, match="does not verify"):
        verify_model(model, a, _trust(p256))


# ------------------------------------------------------------------------------ certificates


def _cert_key(ca: CA, key: ec.EllipticCurvePrivateKey, **kw: Any) -> SigningKey:
    return SigningKey("cert", key, (ca.issue(key, **kw),))


def test_certificate_valid(model: Path, ca: CA, p384) -> None:
    res = verify_model(model, sign_model(model, _cert_key(ca, p384)), TrustStore(ca_certificates=(ca.cert,)))
    assert res.signer.kind == "certificate"
    assert res.signer.identity == "alice@example.com"
    assert "cn:signer" in res.signer.identities


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"not_before": NOW - dt.timedelta(days=30), "not_after": NOW - dt.timedelta(days=1)}, "expired"),
        ({"not_before": NOW + dt.timedelta(days=1), "not_after": NOW + dt.timedelta(days=30)}, "not valid yet"),
        ({"digital_signature": False, "code_signing": False}, "not for signing"),
        ({"is_ca": True}, "CA certificate"),
    ],
    ids=["expired", "not-yet-valid", "no-signing-usage", "ca-as-leaf"],
)
def test_bad_certificates_refused(model: Path, ca: CA, p256, kw, message: str) -> None:
    bundle = sign_model(model, _cert_key(ca, p256, **kw))
    with pytest.raises(VerificationError, match=message):
        verify_model(model, bundle, TrustStore(ca_certificates=(ca.cert,)))


def test_untrusted_ca_refused(model: Path, ca: CA, p256) -> None:
    other_ca = CA("Other Root")
    bundle = sign_model(model, _cert_key(other_ca, p256))
    with pytest.raises(VerificationError, match="does not chain to a trusted CA"):
        verify_model(model, bundle, TrustStore(ca_certificates=(ca.cert,)))
    # Shipping the rogue root inside the bundle does not help: trust never comes from the artifact.
    bundle = sign_model(model, SigningKey("c", p256, (other_ca.issue(p256), other_ca.cert)))
    with pytest.raises(VerificationError, match="does not chain"):
        verify_model(model, bundle, TrustStore(ca_certificates=(ca.cert,)))


def test_certificate_needs_ca_in_trust(model: Path, ca: CA, p256) -> None:
    with pytest.raises(VerificationError, match="no CA certificates"):
        verify_model(model, sign_model(model, _cert_key(ca, p256)), _trust(p256))


def test_certificate_for_revoked_key_refused(model: Path, ca: CA, p256) -> None:
    trust = TrustStore(keys=(TrustedKey("k", p256.public_key(), status="revoked"),), ca_certificates=(ca.cert,))
    with pytest.raises(VerificationError, match="revoked"):
        verify_model(model, sign_model(model, _cert_key(ca, p256)), trust)


@pytest.mark.parametrize(
    ("allowed", "ok"),
    [(("alice@example.com",), True), (("cn:signer",), True), (("bob@example.com",), False), (("key:x",), False)],
)
def test_allowed_signers_for_certificates(model: Path, ca: CA, p256, allowed, ok: bool) -> None:
    bundle = sign_model(model, _cert_key(ca, p256))
    trust = TrustStore(ca_certificates=(ca.cert,), allowed_signers=allowed)
    if ok:
        assert verify_model(model, bundle, trust).signer.identity == "alice@example.com"
    else:
        with pytest.raises(VerificationError, match="not an allowed signer"):
            verify_model(model, bundle, trust)


@pytest.mark.parametrize(("allowed", "ok"), [(("key:k0",), True), (("key:other",), False)])
def test_allowed_signers_for_keys(model: Path, signing_key: SigningKey, p256, allowed, ok: bool) -> None:
    bundle = sign_model(model, signing_key)
    trust = _trust(p256).with_allowed_signers(allowed)
    if ok:
        verify_model(model, bundle, trust)
    else:
        with pytest.raises(VerificationError, match="not an allowed signer"):
            verify_model(model, bundle, trust)


def test_verification_time_can_be_pinned(model: Path, ca: CA, p256) -> None:
    bundle = sign_model(model, _cert_key(ca, p256))
    trust = TrustStore(ca_certificates=(ca.cert,))
    with pytest.raises(VerificationError, match="expired"):
        verify_model(model, bundle, trust, at=NOW + dt.timedelta(days=60))
