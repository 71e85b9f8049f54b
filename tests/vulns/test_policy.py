"""The `checks: vulnerabilities:` gate section and the promotion rule that re-evaluates it now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.errors import ConfigError, PolicyViolation
from bastion.gates.checks import available_checks
from bastion.gates.checks.vulnerabilities import evaluate
from bastion.gates.policy import load_policy
from bastion.vulns import import_advisories
from bastion.vulns.policy import VulnerabilitiesSpec
from tests.vulns.conftest import installed, osv, write

_V = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5: high


def test_check_is_registered() -> None:
    assert "vulnerabilities" in available_checks()


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"max_severity": "high", "ignore": [{"id": "GHSA-aaaa-bbbb-cccc", "reason": "not reachable"}]}, None),
        ({}, None),
        ({"max_severity": "severe"}, "max_severity"),
        ({"ignore": ["GHSA-aaaa-bbbb-cccc"]}, "need a reason"),
        ({"ignore": [{"id": "GHSA-aaaa-bbbb-cccc"}]}, "reason"),
        ({"ignore": [{"id": "GHSA-aaaa-bbbb-cccc", "reason": "  "}]}, "non-empty reason"),
        ({"ignore": [{"id": "GHSA x\n", "reason": "r"}]}, "advisory id"),
        ({"max_severity": "high", "typo": 1}, "unknown field"),
    ],
)
def test_policy_section_validation(section: dict[str, Any], error: str | None) -> None:
    doc = {"version": 1, "checks": {"vulnerabilities": section}}
    if error is None:
        assert isinstance(load_policy(doc).spec("vulnerabilities"), VulnerabilitiesSpec)
    else:
        with pytest.raises(ConfigError, match=error):
            load_policy(doc)


def test_threshold_ignore_and_unknown_severity(served: Any, tmp_path: Path) -> None:
    sk = installed("scikit-learn")
    import_advisories(served, write(tmp_path / "a.json",
                                    osv("GHSA-high", versions=[sk], severity=[{"type": "CVSS_V3", "score": _V}],
                                        aliases=["CVE-2026-1"]),
                                    osv("GHSA-nosev", versions=[sk])))
    spec = VulnerabilitiesSpec(max_severity="high", unknown_severity="low")
    passed, measured, _ = evaluate(served, "income:1", spec)
    assert passed and measured["matches"] == 2 and measured["violations"] == 0
    passed, measured, ev = evaluate(served, "income:1", VulnerabilitiesSpec(max_severity="high"))
    assert not passed and [m["id"] for m in ev["violations"]] == ["GHSA-nosev"]  # unknown counts as critical
    spec = VulnerabilitiesSpec.model_validate({"max_severity": "medium", "unknown_severity": "low",
                                               "ignore": [{"id": "CVE-2026-1", "reason": "server-side only"}]})
    passed, measured, ev = evaluate(served, "income:1", spec)
    assert passed and ev["ignored"] == [{"id": "GHSA-high", "package": "scikit-learn", "reason": "server-side only"}]
    spec = VulnerabilitiesSpec.model_validate({"ignore": [{"id": "GHSA-high", "reason": "r", "package": "numpy"}],
                                               "max_severity": "medium", "unknown_severity": "low"})
    assert not evaluate(served, "income:1", spec)[0]  # ignored for another package only


def test_promotion_refused_while_an_advisory_matches(served: Any, tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    (served.root / "bastion-policy.yaml").write_text(
        "version: 1\nchecks:\n  vulnerabilities:\n    max_severity: medium\n"
        "aliases:\n  production:\n    requires: [vulnerabilities]\n", encoding="utf-8")
    mv2 = served.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="income")
    served.promote(mv2.ref, alias="production")  # no advisory yet
    import_advisories(served, write(tmp_path / "a.json", osv(
        "GHSA-gate-0001", versions=[installed("scikit-learn")], severity=[{"type": "CVSS_V3", "score": _V}])))
    with pytest.raises(PolicyViolation, match=r"GHSA-gate-0001.*scikit-learn|scikit-learn.*GHSA-gate-0001"):
        served.promote("income:1", alias="production")
    policy = served.root / "bastion-policy.yaml"
    policy.write_text(policy.read_text().replace(
        "max_severity: medium", "max_severity: medium\n    ignore:\n      - {id: GHSA-gate-0001, reason: accepted}"))
    served.promote("income:1", alias="production")
    assert served.get_model("income@production").version == 1


def test_gate_requirement_brings_the_check_into_promotion(served: Any, tmp_path: Path) -> None:
    from bastion.gates.promotion import check_promotion

    (served.root / "bastion-policy.yaml").write_text(
        "version: 1\nchecks:\n  vulnerabilities: {max_severity: none}\n"
        "aliases:\n  production:\n    requires: [gate]\n", encoding="utf-8")
    import_advisories(served, write(tmp_path / "a.json", osv("GHSA-g2", versions=[installed("scikit-learn")])))
    decision = check_promotion(served, served.get_model("income:1"), "production")
    assert not decision.allowed
    assert any("GHSA-g2" in r for r in decision.reasons)
    assert decision.evidence["vulnerabilities"]["violations"] == ["GHSA-g2"]


def test_rollback_on_does_not_change_the_gate_policy_digest() -> None:
    a = load_policy({"version": 1, "aliases": {"production": {"requires": ["gate"]}}})
    b = load_policy({"version": 1, "aliases": {"production": {"requires": ["gate"],
                                                              "rollback_on": ["vulnerability", "rescan_finding"]}}})
    assert a.digest == b.digest
    with pytest.raises(ConfigError, match="rollback_on"):
        load_policy({"version": 1, "aliases": {"production": {"rollback_on": ["drift"]}}})
