"""Promotion rules: may this model version take this alias now? Called by ``Project.promote``.

Reads the alias's rule from the project's ``bastion-policy.yaml`` and checks gate, scan and signature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import BastionError
from bastion.gates.attestation import verify_attestation
from bastion.gates.policy import Policy, find_project_policy, load_policy

__all__ = ["PromotionDecision", "check_promotion"]

log = logging.getLogger("bastion.gates")


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the promotion may go ahead, why not, and the evidence the audit entry records."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reasons": list(self.reasons), "evidence": self.evidence}


def _ref(mv: Any) -> str:
    return str(getattr(mv, "ref", None) or f"{mv.name}:{mv.version}")


def _gate_evidence(project: Any, ref: str, digest: str, policy: Policy, reasons: list[str]) -> dict[str, Any]:
    docs = project.attachments(ref, "attestation")
    gate_docs = [d for d in docs if d.get("type") == "gate"]
    if not gate_docs:
        reasons.append(f"{ref} has no gate attestation; run `bastion gate run {ref} --policy ...` first.")
        return {"attestation": None}
    doc = gate_docs[-1]  # the most recent gate run decides
    ev: dict[str, Any] = {"attestation_digest": doc.get("statement_digest"), "signed": doc.get("bundle") is not None}
    try:
        statement = verify_attestation(project, doc, model_digest=digest)
    except BastionError as e:
        reasons.append(f"Gate attestation of {ref} failed verification: {e}")
        ev["verified"] = False
        return ev
    ev["verified"] = True
    pred = statement["predicate"]
    ev["gate_id"] = pred.get("gate_id")
    ev["gate_time"] = pred.get("time")
    ev["gate_passed"] = bool(pred.get("passed"))
    ran_with = (pred.get("policy") or {}).get("digest")
    ev["gate_policy_digest"] = ran_with
    ev["policy_digest"] = policy.digest
    if ran_with != policy.digest:
        reasons.append(
            f"The gate of {ref} ran with policy {ran_with}, but the policy is now {policy.digest} "
            f"({policy.source} was edited after the gate ran); re-run the gate with the current policy."
        )
    if not pred.get("passed"):
        failed = [c["name"] for c in pred.get("checks", []) if c.get("required") and not c.get("passed")]
        reasons.append(f"The last gate of {ref} failed (required checks failed: {', '.join(failed) or 'unknown'}).")
    return ev


def _scan_evidence(project: Any, ref: str, mv: Any, reasons: list[str]) -> dict[str, Any]:
    scans = project.attachments(ref, "scan")
    if not scans:
        reasons.append(f"{ref} has no recorded scan; run `bastion model scan {ref}`.")
        return {"scan": None, "scan_status": getattr(mv, "scan_status", None)}
    last = scans[-1]
    ev = {"clean": bool(last.get("clean")), "max_severity": last.get("max_severity")}
    if not last.get("clean"):
        reasons.append(f"The last scan of {ref} is not clean (max severity {last.get('max_severity')}).")
    return ev


def _signature_evidence(project: Any, ref: str, reasons: list[str]) -> dict[str, Any]:
    try:
        from bastion.gates.signatures import verify_version
    except ImportError:
        reasons.append("Signature verification is not available in this installation; cannot promote.")
        return {"valid": False}
    try:
        status = verify_version(project, ref)
    except BastionError as e:
        reasons.append(f"The signature of {ref} cannot be verified: {e}")
        return {"valid": False, "reason": str(e)}
    ev = {"valid": bool(status.valid), "reason": getattr(status, "reason", ""), "signer": getattr(status, "signer", "")}
    if not status.valid:
        reasons.append(f"The signature of {ref} is not valid: {getattr(status, 'reason', '')}")
    return ev


def _vulnerability_evidence(project: Any, ref: str, policy: Policy, reasons: list[str]) -> dict[str, Any]:
    from bastion.gates.checks.vulnerabilities import evaluate
    from bastion.vulns.policy import VulnerabilitiesSpec

    spec = policy.spec("vulnerabilities") if "vulnerabilities" in policy.checks else VulnerabilitiesSpec()
    assert isinstance(spec, VulnerabilitiesSpec)
    if not spec.required and "vulnerabilities" in policy.checks:
        return {"required": False}
    passed, measured, evidence = evaluate(project, ref, spec)
    if not passed:
        bad = evidence.get("violations") or []
        named = ", ".join(f"{m['package']} {m['installed']} ({m['id']}, {m['severity']})" for m in bad[:5])
        reasons.append(
            f"{ref} is affected by advisories above '{spec.max_severity}': {named or evidence.get('error')}; "
            "upgrade the package and register a new version, or ignore the advisory in the policy with a reason."
        )
    return {**measured, "passed": passed, "violations": [m["id"] for m in evidence.get("violations") or []],
            "ignored": evidence.get("ignored") or []}


def check_promotion(project: Any, model_version: Any, alias: str) -> PromotionDecision:
    """Decide whether ``model_version`` may take ``alias`` under the project's policy.

    With no policy file, or a policy with no rule for ``alias``, the promotion is allowed.
    A broken policy file refuses the promotion (fail closed) rather than allowing it.
    """
    ref = _ref(model_version)
    path = find_project_policy(project)
    if path is None:
        return PromotionDecision(True, (), {"policy": None, "rule": None})
    try:
        policy = load_policy(path)
    except BastionError as e:
        return PromotionDecision(False, (f"The project policy cannot be read: {e}",), {"policy": str(path)})
    rule = policy.aliases.get(alias)
    evidence: dict[str, Any] = {"policy": str(path), "policy_digest": policy.digest, "alias": alias}
    if rule is None or not rule.requires:
        evidence["rule"] = None
        return PromotionDecision(True, (), evidence)
    evidence["requires"] = list(rule.requires)
    evidence["force_allowed"] = list(rule.force_allowed)
    reasons: list[str] = []
    gate_policy = policy
    if rule.policy:
        try:
            gate_policy = load_policy(path.parent / rule.policy)
        except BastionError as e:
            return PromotionDecision(False, (f"The policy for alias '{alias}' cannot be read: {e}",), evidence)
        evidence["gate_policy"] = rule.policy
    digest = str(model_version.digest)
    if "gate" in rule.requires:
        evidence["gate"] = _gate_evidence(project, ref, digest, gate_policy, reasons)
    if "scan" in rule.requires:
        evidence["scan"] = _scan_evidence(project, ref, model_version, reasons)
    gate_vulns = "gate" in rule.requires and "vulnerabilities" in gate_policy.checks
    if "vulnerabilities" in rule.requires or gate_vulns:
        # advisories land after the gate ran: the check is evaluated again, now, against today's advisories
        evidence["vulnerabilities"] = _vulnerability_evidence(project, ref, gate_policy, reasons)
    if "signature" in rule.requires:
        evidence["signature"] = _signature_evidence(project, ref, reasons)
        gate_ev = evidence.get("gate") or {}
        if "gate" in rule.requires and gate_ev.get("verified") and not gate_ev.get("signed"):
            reasons.append(f"The gate attestation of {ref} is unsigned; the alias '{alias}' requires signatures.")
    return PromotionDecision(not reasons, tuple(reasons), evidence)


