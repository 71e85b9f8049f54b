"""Signing arbitrary in-toto statements (gate attestations): round trips and refusals."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.crypto.signing import (
    SigningKey,
    TrustedKey,
    TrustStore,
    sign_statement,
    verify_statement,
    verify_statement_detailed,
)
from bastion.errors import DataError, VerificationError

from .conftest import CA

GATE = "https://bastion.dev/gate-result/v1"


def _statement(predicate: Any = None) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "churn:3", "digest": {"sha256": "ab" * 32}}],
        "predicateType": GATE,
        "predicate": predicate if predicate is not None else {"passed": True, "checks": [{"accuracy": 0.91}]},
    }


def _trust(key: SigningKey, status: str = "active") -> TrustStore:
    return TrustStore(keys=(TrustedKey("gate", key.public_key, status=status),))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(predicate=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_round_trip(signing_key: SigningKey, predicate: dict[str, Any]) -> None:
    statement = _statement(predicate)
    bundle = sign_statement(statement, signing_key)
    assert verify_statement(json.loads(json.dumps(bundle)), _trust(signing_key)) == statement


def test_detailed_names_the_signer(signing_key: SigningKey) -> None:
    v = verify_statement_detailed(sign_statement(_statement(), signing_key), _trust(signing_key))
    assert v.signer.identity == "key:gate" and v.signer.key_fingerprint == signing_key.fingerprint


def test_certificate_signed_statement(ca: CA, p384) -> None:
    key = SigningKey("c", p384, (ca.issue(p384, email="gates@example.com"),))
    bundle = sign_statement(_statement(), key)
    trust = TrustStore(ca_certificates=(ca.cert,), allowed_signers=("gates@example.com",))
    v = verify_statement_detailed(bundle, trust)
    assert v.signer.kind == "certificate"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "_type"),
        (lambda s: s.update(subject=[]), "non-empty 'subject'"),
        (lambda s: s["subject"][0].update(digest={}), "digest"),
        (lambda s: s.update(predicateType=""), "predicateType"),
        (lambda s: s.update(predicate={"x": object()}), "JSON-serializable"),
    ],
)
def test_malformed_statements_not_signed(signing_key: SigningKey, edit, message: str) -> None:
    s = _statement()
    sign_statement(s, signing_key)
    edit(s)
    with pytest.raises(DataError, match=message):
        sign_statement(s, signing_key)


def test_tampered_attestation_refused(signing_key: SigningKey) -> None:
    bundle = sign_statement(_statement(), signing_key)
    st_ = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    st_["predicate"]["passed"] = False
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st_).encode()).decode()
    with pytest.raises(VerificationError, match="does not verify"):
        verify_statement(bundle, _trust(signing_key))


def test_wrong_predicate_type_refused(signing_key: SigningKey) -> None:
    bundle = sign_statement(_statement(), signing_key)
    assert verify_statement(bundle, _trust(signing_key), predicate_type=GATE)["predicateType"] == GATE
    with pytest.raises(VerificationError, match="predicate type"):
        verify_statement(bundle, _trust(signing_key), predicate_type="https://model_signing/signature/v1.0")


def test_revoked_key_refused(signing_key: SigningKey) -> None:
    with pytest.raises(VerificationError, match="revoked"):
        verify_statement(sign_statement(_statement(), signing_key), _trust(signing_key, "revoked"))


def test_trust_may_be_a_project(project, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.crypto.signing import init_signing_key, load_signing_key

    init_signing_key(project, "gate", passphrase="pw")
    key = load_signing_key(project, passphrase="pw", env={})
    assert verify_statement(sign_statement(_statement(), key), project) == _statement()
