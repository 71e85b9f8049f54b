"""The one trust evaluator: may this model version be promoted to, served under or shown as trusted for an alias?

``evaluate`` gathers every piece of evidence once (artifact digest, signature, scan, gate attestation, the
audited alias event) with its verdict, reading the policy once and verifying each signature and attestation
once. Promote, serve (load and reload), the dashboard and the supply-chain check all call it; any error
while gathering evidence is a refusal. The database's alias table, attachments and version rows are only
caches: the evidence used must be what the audit chain says is newest, anchored by signed checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bastion.audit.checkpoints import anchor
from bastion.audit.refusals import record_refusal
from bastion.errors import BastionError, PolicyViolation, RegistryError
from bastion.registry._attachments import list_records
from bastion.registry.refs import check_alias

if TYPE_CHECKING:
    from bastion.audit.log import AuditEntry
    from bastion.gates.policy import Policy
    from bastion.protocols import ProjectHandle
    from bastion.registry.records import ModelVersion

__all__ = ["Evidence", "Purpose", "TrustReport", "evaluate", "promote"]

log = logging.getLogger("bastion.trust")

Purpose = Literal["promote", "serve", "check"]
ALIAS_ACTIONS = ("model.promote", "model.promote.forced", "model.rollback")
_SERVE_REQUIRES = ("digest", "signature", "scan", "gate", "alias")


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence and its verdict."""

    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, **self.data}

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style read of :meth:`to_dict` (the load report's checks used to be plain dicts)."""
        return self.to_dict().get(key, default)


@dataclass(frozen=True)
class TrustReport:
    """Every piece of evidence for one version and alias, and the verdict: ``ok`` only when all hold."""

    ref: str
    alias: str | None
    digest: str
    purpose: str
    checks: dict[str, Evidence]
    policy: str | None = None
    policy_digest: str | None = None
    requires: tuple[str, ...] = ()
    force_allowed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.checks.values())

    allowed = ok

    @property
    def reasons(self) -> list[str]:
        return [f"{name}: {e.detail}" for name, e in self.checks.items() if not e.ok]

    def evidence(self) -> dict[str, Any]:
        """The compact evidence an audit entry records."""
        return {"policy": self.policy, "policy_digest": self.policy_digest, "alias": self.alias,
                "requires": list(self.requires), "force_allowed": list(self.force_allowed),
                **{name: e.to_dict() for name, e in self.checks.items()}}

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "alias": self.alias, "digest": self.digest, "purpose": self.purpose,
                "ok": self.ok, "checks": {k: e.to_dict() for k, e in self.checks.items()},
                "reasons": self.reasons, "policy": self.policy, "policy_digest": self.policy_digest,
                "requires": list(self.requires), "force_allowed": list(self.force_allowed)}


# ---------------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class _Rules:
    source: str | None
    digest: str | None
    requires: tuple[str, ...]
    force_allowed: tuple[str, ...]
    gate_policy: Policy | None
    error: str | None = None


class _ProjectPolicy:
    """The default: the project's own ``bastion-policy.yaml`` (if it has one)."""


_PROJECT = _ProjectPolicy()


def _rules(project: ProjectHandle, alias: str | None, policy: Policy | str | Path | _ProjectPolicy | None) -> _Rules:
    """The alias's rule and the policy its gate must have run with (the policy file is read once)."""
    from bastion.gates.policy import find_project_policy, load_policy

    try:
        if isinstance(policy, _ProjectPolicy):
            path = find_project_policy(project)
            if path is None:
                return _Rules(None, None, (), (), None)
            pol = load_policy(path)
        elif policy is None:
            return _Rules(None, None, (), (), None)
        else:
            pol = load_policy(policy)
            path = Path(pol.source) if pol.source != "<policy>" else Path(project.root) / "bastion-policy.yaml"
        rule = pol.aliases.get(alias) if alias is not None else None
        gate_policy = pol
        if rule is not None and rule.policy:
            gate_policy = load_policy(path.parent / rule.policy)
    except BastionError as e:
        where = "bastion-policy.yaml" if isinstance(policy, _ProjectPolicy) else str(policy)
        return _Rules(where, None, (), (), None,
                      error=f"the project policy cannot be read: {e}")
    if rule is None:
        return _Rules(pol.source, pol.digest, (), (), gate_policy)
    return _Rules(pol.source, pol.digest, tuple(rule.requires), tuple(rule.force_allowed), gate_policy)


# -------------------------------------------------------------------------------------------- evidence


def _newest_audited_digest(project: ProjectHandle, ref: str, kind: str) -> str | None:
    """The digest of the newest audited ``kind`` document of ``ref`` (attach entry or register entry)."""
    def match(e: AuditEntry) -> bool:
        if e.action == "model.register":
            return isinstance(e.details.get("scan_report"), str) and kind == "scan"
        return isinstance(e.details.get("digest"), str)

    entry = project.audit.newest((f"model.attach.{kind}", "model.register"), subject=ref, match=match)
    if entry is None:
        return None
    key = "scan_report" if entry.action == "model.register" else "digest"
    return str(entry.details[key])


def _signature(project: ProjectHandle, mv: ModelVersion) -> tuple[Evidence, Evidence]:
    """Signature and digest evidence from one verification (the signature check re-hashes every byte of
    a fresh verified copy, so a valid signature proves the digest too)."""
    from bastion.gates.signatures import verify_version

    try:
        status = verify_version(project, mv.ref)
    except BastionError as e:
        status = None
        err = str(e)
    if status is not None and status.valid:
        sig = Evidence(True, status.reason, {"valid": True, "signer": status.signer,
                                             "key_fingerprint": status.key_fingerprint})
        return sig, Evidence(True, f"artifact matches {mv.digest}")
    reason = status.reason if status is not None else f"cannot be verified: {err}"
    sig = Evidence(False, f"the signature of {mv.ref} is not valid: {reason}", {"valid": False})
    return sig, _digest_only(project, mv)


def _digest_only(project: ProjectHandle, mv: ModelVersion) -> Evidence:
    try:
        if mv.artifact_kind == "file":
            project.blobs.get_bytes(mv.digest, what=f"model {mv.ref}")  # re-hashes every byte
        else:
            with project.tempdir() as tmp:
                project.model_path(mv.ref, f"{tmp}/artifact")
    except BastionError as e:
        return Evidence(False, f"the stored artifact does not match its digest {mv.digest}: {e}")
    return Evidence(True, f"artifact matches {mv.digest}")


def _scan(project: ProjectHandle, mv: ModelVersion) -> Evidence:
    records = list_records(project, mv.ref, "scan")
    if not records:
        return Evidence(False, f"{mv.ref} has no recorded scan; run `bastion model scan {mv.ref}`.",
                        {"scan": None})
    digest, last = records[-1]
    audited = _newest_audited_digest(project, mv.ref, "scan")
    if audited != digest:
        return Evidence(False, f"the newest scan of {mv.ref} in the store ({digest}) is not the newest audited "
                               f"scan ({audited}); rows were deleted or added around the audit log",
                        {"digest": digest, "audited": audited})
    data = {"clean": bool(last.get("clean")), "max_severity": last.get("max_severity"), "digest": digest}
    if mv.scan_status == "allowed" and last.get("status") == "allowed":
        # findings an operator allowed at registration: proven by the audited registration record, never the row
        from bastion.registry._scanning import audited_allowed_globals

        try:
            allowed = audited_allowed_globals(project, mv)
        except BastionError as e:
            return Evidence(False, f"the scan of {mv.ref} has allowed findings that cannot be proven: {e}", data)
        return Evidence(True, "scan clean except findings allowed at registration (audited)"
                        + (f": {', '.join(allowed)}" if allowed else ""),
                        {**data, "allowed_findings": sorted(last.get("allowed_findings") or {}),
                         "allowed_globals": list(allowed)})
    if not last.get("clean") or mv.scan_status != "clean":
        return Evidence(False, f"the last scan of {mv.ref} is not clean (status '{mv.scan_status}', max "
                               f"severity {last.get('max_severity')}).", data)
    return Evidence(True, "scan clean", data)


def _gate(project: ProjectHandle, mv: ModelVersion, gate_policy: Policy | None, *, must_be_signed: bool,
          anchored: bool) -> Evidence:
    from bastion.gates.attestation import verify_attestation

    run = project.audit.newest(("gate.run",), subject=mv.ref)
    if run is None:
        return Evidence(False, f"{mv.ref} has no gate attestation; run `bastion gate run {mv.ref} --policy ...` "
                               "first.", {"attestation": None, "verified": False})
    want = run.details.get("statement_digest")
    docs = [d for _, d in list_records(project, mv.ref, "attestation")
            if d.get("type") == "gate" and d.get("statement_digest") == want]
    ev: dict[str, Any] = {"attestation_digest": want, "audit_seq": run.seq, "verified": False}
    if not docs:
        return Evidence(False, f"the attestation of the newest audited gate run of {mv.ref} (entry {run.seq}, "
                               f"{want}) is missing from the store; it was deleted", ev)
    doc = docs[-1]
    ev["signed"] = doc.get("bundle") is not None
    try:
        statement = verify_attestation(project, doc, model_digest=mv.digest)
    except BastionError as e:
        return Evidence(False, f"Gate attestation of {mv.ref} failed verification: {e}", ev)
    ev["verified"] = True
    pred = statement.get("predicate") or {}
    ran_with = (pred.get("policy") or {}).get("digest")
    ev.update({"gate_id": pred.get("gate_id"), "gate_time": pred.get("time"), "gate_passed": bool(pred.get("passed")),
               "gate_policy_digest": ran_with})
    if bool(pred.get("passed")) != bool(run.details.get("passed")):
        return Evidence(False, f"the gate attestation of {mv.ref} disagrees with its audit entry {run.seq}", ev)
    if not pred.get("passed"):
        failed = [c["name"] for c in pred.get("checks", []) if c.get("required") and not c.get("passed")]
        return Evidence(False, f"The last gate of {mv.ref} failed (required checks failed: "
                               f"{', '.join(failed) or 'unknown'}).", ev)
    if gate_policy is not None:
        ev["policy_digest"] = gate_policy.digest
        if ran_with != gate_policy.digest:
            return Evidence(False, f"The gate of {mv.ref} ran with policy {ran_with}, but the policy is now "
                                   f"{gate_policy.digest} ({gate_policy.source} was edited after the gate ran); "
                                   "re-run the gate with the current policy.", ev)
    if must_be_signed and doc.get("bundle") is None:
        return Evidence(False, f"The gate attestation of {mv.ref} is unsigned; sign gates (a project signing "
                               "key) and re-run the gate.", ev)
    if anchored:
        # vouched, not merely covered: a well-formed gate.run appended in the database by someone without the
        # audit key is covered by the next legitimate checkpoint, but no checkpoint's writer vouches for it
        ok, why = anchor(project, run, vouched=True)
        ev["anchor"] = why
        if not ok:
            return Evidence(False, f"the gate run of {mv.ref} is not proven by the audit chain: {why}", ev)
    return Evidence(True, "passed gate" + (f" under {gate_policy.source}" if gate_policy is not None else ""), ev)


def _alias(project: ProjectHandle, mv: ModelVersion, alias: str) -> Evidence:
    """The alias table says ``mv``; the newest audited promote or rollback of the alias must say so too."""
    name = mv.name

    def for_alias(e: AuditEntry) -> bool:
        return e.details.get("alias") == alias

    entry = project.audit.newest(ALIAS_ACTIONS, subject_prefix=f"{name}:", match=for_alias)
    if entry is None:
        return Evidence(False, f"no audited promote or rollback ever pointed {name}@{alias} anywhere; the alias "
                               "table was edited outside Bastion")
    _, _, ver = entry.subject.rpartition(":")
    digest = entry.details.get("digest")
    data: dict[str, Any] = {"audit_seq": entry.seq, "audited_version": int(ver) if ver.isdigit() else None}
    if not ver.isdigit() or int(ver) != mv.version:
        return Evidence(False, f"the alias table points {name}@{alias} at version {mv.version}, but the newest "
                               f"audited {entry.action} (entry {entry.seq}) points it at {entry.subject}", data)
    if digest is not None and digest != mv.digest:
        return Evidence(False, f"{mv.ref} now has digest {mv.digest}, but entry {entry.seq} promoted digest "
                               f"{digest} (the version row was edited)", data)
    ok, why = anchor(project, entry, vouched=True)  # a forged promote covered by a later checkpoint: refused
    data["anchor"] = why
    if not ok:
        return Evidence(False, f"the alias event is not proven by the audit chain: {why}", data)
    return Evidence(True, f"set by audited {entry.action} (entry {entry.seq})", data)


def _vulnerabilities(project: ProjectHandle, mv: ModelVersion, gate_policy: Policy | None) -> Evidence:
    """Advisories land after the gate ran: the check is evaluated again, now, against today's advisories."""
    from bastion.gates.checks.vulnerabilities import evaluate as check_vulns
    from bastion.vulns.policy import VulnerabilitiesSpec

    in_policy = gate_policy is not None and "vulnerabilities" in gate_policy.checks
    spec = gate_policy.spec("vulnerabilities") if gate_policy is not None and in_policy else VulnerabilitiesSpec()
    assert isinstance(spec, VulnerabilitiesSpec)
    if in_policy and not spec.required:
        return Evidence(True, "advisory check not required", {"required": False})
    passed, measured, evidence = check_vulns(project, mv.ref, spec)
    data = {**measured, "passed": passed, "violations": [m["id"] for m in evidence.get("violations") or []],
            "ignored": evidence.get("ignored") or []}
    if passed:
        return Evidence(True, "no advisory above the policy's severity", data)
    bad = evidence.get("violations") or []
    named = ", ".join(f"{m['package']} {m['installed']} ({m['id']}, {m['severity']})" for m in bad[:5])
    return Evidence(False, f"{mv.ref} is affected by advisories above '{spec.max_severity}': "
                           f"{named or evidence.get('error')}; upgrade the package and register a new version, or "
                           "ignore the advisory in the policy with a reason.", data)


# ------------------------------------------------------------------------------------------ evaluate


def evaluate(
    project: ProjectHandle,
    version: ModelVersion | str,
    alias: str | None,
    policy: Policy | str | Path | _ProjectPolicy | None = _PROJECT,
    *,
    purpose: Purpose = "promote",
    requires: Iterable[str] | None = None,
) -> TrustReport:
    """Gather and judge the evidence for ``version`` under ``alias``; never raises for failed evidence.

    Parameters
    ----------
    policy
        Default: the project's ``bastion-policy.yaml`` (None: no policy).
    purpose
        ``"promote"`` (and the dashboard's "would it promote?"): what the alias's rule requires.
        ``"serve"``: always digest, signature, clean scan, signed passed gate and the audited alias event.
        ``"check"``: exactly ``requires`` (the supply-chain check).
    """
    try:
        mv = project.get_model(version, include_deleted=True) if isinstance(version, str) else version
    except BastionError as e:
        ref = str(version)
        return TrustReport(ref, alias, "", purpose, {"version": Evidence(False, f"cannot resolve {ref}: {e}")})
    try:
        return _evaluate(project, mv, alias, policy, purpose, requires)
    except Exception as e:  # any error on the trust path is a refusal, never a pass
        log.exception("trust evaluation of %s failed", mv.ref)
        return TrustReport(mv.ref, alias, mv.digest, purpose,
                           {"evaluation": Evidence(False, f"evaluation failed: {type(e).__name__}: {e}")})


def _evaluate(project: ProjectHandle, mv: ModelVersion, alias: str | None,
              policy: Policy | str | Path | _ProjectPolicy | None, purpose: Purpose,
              requires: Iterable[str] | None) -> TrustReport:
    checks: dict[str, Evidence] = {}
    if mv.deleted:
        checks["version"] = Evidence(False, f"{mv.ref} was deleted on {mv.deleted_at}.")
    else:
        # the row's deleted_at is a cache: a version deleted in the audit chain stays deleted when someone who can
        # write the database clears the column (a deletion needs no proof: it only takes trust away)
        gone = project.audit.newest(("model.delete",), subject=mv.ref)
        if gone is not None:
            checks["version"] = Evidence(False, f"{mv.ref} was deleted by audit entry {gone.seq} ({gone.ts}), but its "
                                                "row says it is live: the row was edited outside Bastion.")
    rules = _rules(project, alias, policy)
    if rules.error:
        checks["policy"] = Evidence(False, rules.error)
    if purpose == "serve":
        need = set(_SERVE_REQUIRES) | set(rules.requires)
    elif purpose == "check":
        need = set(requires or ())
    else:
        need = set(rules.requires)
    if "signature" in need or "digest" in need:
        sig, dig = _signature(project, mv) if "signature" in need else (None, _digest_only(project, mv))
        if "digest" in need or purpose == "serve":
            checks["digest"] = dig
        if sig is not None:
            checks["signature"] = sig
    if "scan" in need:
        checks["scan"] = _scan(project, mv)
    if "gate" in need:
        checks["gate"] = _gate(project, mv, rules.gate_policy, must_be_signed=purpose == "serve" or "signature" in need,
                               anchored=purpose == "serve")
    gate_vulns = "gate" in need and rules.gate_policy is not None and "vulnerabilities" in rules.gate_policy.checks
    if "vulnerabilities" in need or gate_vulns:
        checks["vulnerabilities"] = _vulnerabilities(project, mv, rules.gate_policy)
    if "alias" in need and alias is not None:
        checks["alias"] = _alias(project, mv, alias)
    return TrustReport(mv.ref, alias, mv.digest, purpose, checks, rules.source, rules.digest,
                       tuple(sorted(need)) if purpose != "promote" else rules.requires, rules.force_allowed)


# ------------------------------------------------------------------------------------------- promote


def promote(project: ProjectHandle, ref: str, *, alias: str, force_reason: str | None = None) -> ModelVersion:
    """Point ``alias`` at ``ref`` when the evaluator allows it (or a permitted actor forces it, audited)."""
    from bastion.registry import _aliases

    check_alias(alias)
    mv = project.get_model(ref, include_deleted=True)
    if mv.deleted:
        raise RegistryError(f"Model {mv.ref} was deleted on {mv.deleted_at}; a deleted version cannot be promoted.")
    report = evaluate(project, mv, alias, purpose="promote")
    forced = False
    if not report.ok:
        reasons = [e.detail for e in report.checks.values() if not e.ok]
        details = {"alias": alias, "version": mv.version, "digest": mv.digest}
        if not force_reason or not force_reason.strip():
            record_refusal(project, "model.refused", mv.ref, "; ".join(reasons), details)
            raise PolicyViolation(
                f"Promotion of {mv.ref} to '{alias}' refused: " + "; ".join(reasons)
                + ". Fix these, or use --force with --reason (audited)."
            )
        if project.actor not in report.force_allowed:
            record_refusal(project, "model.force_refused", mv.ref,
                           f"'{project.actor}' is not in aliases.{alias}.force_allowed",
                           {**details, "force_reason": force_reason, "refused_because": reasons})
            raise PolicyViolation(
                f"Promotion of {mv.ref} to '{alias}' refused, and '{project.actor}' may not force it: the policy's "
                f"aliases.{alias}.force_allowed lists who may ({', '.join(report.force_allowed) or 'nobody'}). "
                "Refused because: " + "; ".join(reasons)
            )
        forced = True
    evidence = report.evidence() if report.policy is not None else None
    return _aliases.apply_promotion(project, mv, alias, evidence=evidence, forced=forced, force_reason=force_reason,
                                    refused_because=report.reasons if forced else None)
