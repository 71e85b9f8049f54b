"""run_gate end to end on a real project; attestation signing/tampering; promotion rules and policy drift."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from bastion.demo.data import ADULT_TARGET
from bastion.errors import DataError, VerificationError
from bastion.gates import check_promotion, run_gate
from bastion.gates.attestation import verify_attestation
from bastion.gates.report import render_html, render_json
from tests.gates.conftest import POLICY

FAST = copy.deepcopy(POLICY)
FAST["checks"] = {k: v for k, v in FAST["checks"].items() if k not in {"robustness", "privacy"}}


def test_run_gate_stores_result_attestation_and_audit(gated, adult_test) -> None:
    p, ref, _ = gated
    res = run_gate(p, ref, POLICY, adult_test, ADULT_TARGET)
    assert [c.name for c in res.checks] == list(POLICY["checks"])
    assert res.passed is all(c.passed for c in res.checks if c.required)
    stored = p.attachments(ref, "gate")[-1]
    assert stored["schema_version"] == 1 and stored["gate_id"] == res.gate_id
    att = p.attachments(ref, "attestation")[-1]
    assert att["statement"]["predicate"]["policy"]["digest"] == res.policy_digest
    assert att["statement"]["subject"][0]["digest"]["sha256"] == p.get_model(ref).digest.split(":")[1]
    assert att["bundle"] is None  # no signing key in this project
    assert any(e.action == "gate.run" for e in p.audit.entries())
    html = render_html(res)
    assert "<script" in html and "<script src" not in html and "sex x race" in html and len(html) > 1_000_000
    assert json.loads(render_json(res))["passed"] == res.passed


def test_missing_sensitive_column_names_the_policy_line(gated, adult_test, tmp_path) -> None:
    p, ref, _ = gated
    path = tmp_path / "bastion-policy.yaml"
    path.write_text(yaml.safe_dump({**FAST, "sensitive_attributes": ["sex", "religion"], "intersections": []},
                                   sort_keys=False))
    with pytest.raises(DataError, match=r"line \d+ \(sensitive_attributes.1\).*'religion'"):
        run_gate(p, ref, path, adult_test, ADULT_TARGET)


def _policy_file(p, doc) -> None:
    (p.root / "bastion-policy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_promotion_rules(gated, adult_test) -> None:
    p, ref, _ = gated
    mv = p.get_model(ref)
    assert check_promotion(p, mv, "production").allowed  # no policy file: nothing required
    doc = copy.deepcopy(FAST)
    doc["checks"]["fairness"]["thresholds"]["demographic_parity_difference"] = 0.5  # passes
    _policy_file(p, doc)
    assert check_promotion(p, mv, "staging").allowed  # no rule for this alias
    d = check_promotion(p, mv, "production")
    assert not d.allowed  # no gate yet for this policy (earlier run used another policy)
    run_gate(p, ref, p.root / "bastion-policy.yaml", adult_test, ADULT_TARGET)
    ok = check_promotion(p, mv, "production")
    assert ok.allowed, ok.reasons
    assert ok.evidence["gate"]["verified"] and ok.evidence["gate"]["gate_passed"]

    doc["checks"]["fairness"]["thresholds"]["demographic_parity_difference"] = 0.6  # edited after the gate
    _policy_file(p, doc)
    drift = check_promotion(p, mv, "production")
    assert not drift.allowed and "edited after the gate ran" in drift.reasons[0]

    doc["checks"]["fairness"]["thresholds"]["demographic_parity_difference"] = 0.01  # strict: gate fails
    _policy_file(p, doc)
    failed = run_gate(p, ref, p.root / "bastion-policy.yaml", adult_test, ADULT_TARGET)
    assert not failed.passed
    refused = check_promotion(p, mv, "production")
    assert not refused.allowed and "failed" in " ".join(refused.reasons)

    doc["aliases"]["production"]["requires"] = ["gate", "scan", "signature"]
    _policy_file(p, doc)
    many = check_promotion(p, mv, "production")
    assert not many.allowed and many.evidence["signature"]["valid"] is False


def test_tampered_attestation_is_detected(gated, adult_test) -> None:
    p, ref, _ = gated
    res = run_gate(p, ref, FAST, adult_test, ADULT_TARGET)
    att = copy.deepcopy(p.attachments(ref, "attestation")[-1])
    digest = p.get_model(ref).digest
    assert verify_attestation(p, att, model_digest=digest)["predicate"]["gate_id"] == res.gate_id
    att["statement"]["predicate"]["passed"] = not att["statement"]["predicate"]["passed"]
    with pytest.raises(VerificationError, match="edited after the gate ran"):
        verify_attestation(p, att, model_digest=digest)
    with pytest.raises(VerificationError, match="different artifact"):
        verify_attestation(p, p.attachments(ref, "attestation")[-1], model_digest="sha256:" + "1" * 64)


def test_signed_attestation_verifies_and_tampering_breaks_it(gated, adult_test, monkeypatch) -> None:
    from bastion.crypto.signing import init_signing_key
    from bastion.gates.attestation import statement_digest

    p, ref, _ = gated
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "pw")
    init_signing_key(p, "gatekeeper", passphrase="pw")
    res = run_gate(p, ref, FAST, adult_test, ADULT_TARGET)
    assert res.attestation["signed"]
    att = copy.deepcopy(p.attachments(ref, "attestation")[-1])
    digest = p.get_model(ref).digest
    assert verify_attestation(p, att, model_digest=digest)["predicate"]["passed"] == res.passed
    # forge: flip the verdict and fix up the recorded digest; the signature no longer covers it
    att["statement"]["predicate"]["passed"] = not res.passed
    att["statement_digest"] = statement_digest(att["statement"])
    with pytest.raises(VerificationError, match="tampered"):
        verify_attestation(p, att, model_digest=digest)
    # forge the signed payload itself: the signature check fails
    bad = copy.deepcopy(p.attachments(ref, "attestation")[-1])
    bad["bundle"]["dsseEnvelope"]["payload"] = bad["bundle"]["dsseEnvelope"]["payload"][:-8] + "AAAAAAA="
    with pytest.raises(VerificationError):
        verify_attestation(p, bad, model_digest=digest)
