"""Supply-chain check: a clean recorded scan, the artifact matches its stored digest, dependencies recorded."""

from __future__ import annotations

from typing import Any, ClassVar

from bastion.errors import BastionError
from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.policy import SupplyChainSpec
from bastion.trust import evaluate

__all__ = ["SupplyChainCheck"]


class SupplyChainCheck(Check):
    """Each required item counts 1 when it holds; the check passes when all required items hold."""

    name: ClassVar[str] = "supply_chain"
    spec_model: ClassVar[type[SupplyChainSpec]] = SupplyChainSpec

    def run(self, context: CheckContext) -> CheckResult:
        spec = context.spec(self.name)
        assert isinstance(spec, SupplyChainSpec)
        p, ref = context.project, context.ref
        measured: dict[str, Any] = {}
        threshold: dict[str, Any] = {}
        evidence: dict[str, Any] = {}
        failed: list[str] = []

        # The trust evaluator gathers scan, digest and signature evidence (each verified once).
        need = {"scan", "digest"} | ({"signature"} if spec.require_signature else set())
        report = evaluate(p, context.model_version, None, purpose="check", requires=need)
        scan = report.checks.get("scan")
        measured["scan_clean"] = bool(scan is not None and scan.ok)
        evidence["scan"] = scan.to_dict() if scan is not None else None
        if spec.require_clean_scan:
            threshold["scan_clean"] = True
            if not measured["scan_clean"]:
                failed.append("scan_clean")

        digest = report.checks.get("digest")
        measured["digest_matches"] = bool(digest is not None and digest.ok)
        if digest is not None and not digest.ok:
            evidence["digest_error"] = digest.detail
        evidence["digest"] = context.model_version.digest
        threshold["digest_matches"] = True
        if not measured["digest_matches"]:
            failed.append("digest_matches")
        for name, ev in report.checks.items():
            if name not in {"scan", "digest", "signature"} and not ev.ok:  # evaluation error: fail closed
                failed.append(name)
                evidence[name] = ev.to_dict()

        env: dict[str, Any] = {}
        try:
            env = p.environment(ref) or {}
        except (BastionError, AttributeError) as e:
            evidence["environment_error"] = str(e)
        packages = env.get("packages") or env.get("dependencies") or {}
        measured["dependencies_recorded"] = len(packages)
        if spec.require_dependencies:
            threshold["dependencies_recorded"] = ">= 1"
            if not packages:
                failed.append("dependencies_recorded")

        if spec.require_signature:
            threshold["signature_valid"] = True
            sig = report.checks.get("signature")
            measured["signature_valid"] = bool(sig is not None and sig.ok)
            evidence["signature"] = sig.to_dict() if sig is not None else {"reason": "not evaluated"}
            if not measured["signature_valid"]:
                failed.append("signature_valid")
        evidence["failed"] = failed
        return CheckResult(self.name, measured, threshold, not failed, spec.required, evidence)
