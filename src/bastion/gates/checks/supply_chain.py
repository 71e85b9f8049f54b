"""Supply-chain check: a clean recorded scan, the artifact matches its stored digest, dependencies recorded."""

from __future__ import annotations

from typing import Any, ClassVar

from bastion.errors import BastionError
from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.policy import SupplyChainSpec

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

        scans = p.attachments(ref, "scan")
        last = scans[-1] if scans else None
        measured["scan_clean"] = bool(last and last.get("clean"))
        evidence["scan"] = {"recorded": last is not None, "max_severity": last.get("max_severity") if last else None}
        if spec.require_clean_scan:
            threshold["scan_clean"] = True
            if not measured["scan_clean"]:
                failed.append("scan_clean")

        try:
            p.model_path(ref)  # materializing verifies every byte against the stored digest
            measured["digest_matches"] = True
        except BastionError as e:
            measured["digest_matches"] = False
            evidence["digest_error"] = str(e)
        evidence["digest"] = context.model_version.digest
        threshold["digest_matches"] = True
        if not measured["digest_matches"]:
            failed.append("digest_matches")

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
            try:
                from bastion.gates.signatures import verify_version

                status = verify_version(p, ref)
                measured["signature_valid"] = bool(status.valid)
                evidence["signature"] = {
                    "reason": getattr(status, "reason", ""), "signer": getattr(status, "signer", "")
                }
            except (ImportError, BastionError) as e:
                measured["signature_valid"] = False
                evidence["signature"] = {"reason": str(e)}
            if not measured["signature_valid"]:
                failed.append("signature_valid")
        evidence["failed"] = failed
        return CheckResult(self.name, measured, threshold, not failed, spec.required, evidence)
