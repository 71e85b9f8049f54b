"""The gate attestation: an in-toto Statement whose predicate records what the gate measured.

Built by ``run_gate``, signed when the project has a signing key, and verified again at promotion.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from bastion.errors import VerificationError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = [
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "build_statement",
    "statement_digest",
    "verify_attestation",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://bastion.dev/attestations/gate/v1"


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def statement_digest(statement: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of a statement."""
    return "sha256:" + hashlib.sha256(_canonical(statement)).hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1] if ":" in digest else digest


def build_statement(result: Any) -> dict[str, Any]:
    """The in-toto statement for a ``GateResult`` (subject: the model artifact's digest)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": result.ref, "digest": {"sha256": _hex(result.model_digest)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "schema_version": 1,
            "passed": bool(result.passed),
            "policy": {
                "name": result.policy_name,
                "version": result.policy_version,
                "digest": result.policy_digest,
            },
            "checks": [
                {k: c[k] for k in ("name", "passed", "required", "measured", "threshold", "error")}
                for c in (x.to_dict() for x in result.checks)
            ],
            "model": {"ref": result.ref, "digest": result.model_digest},
            "datasets": result.datasets,
            "time": result.finished_at,
            "actor": result.actor,
            "gate_id": result.gate_id,
        },
    }


def verify_attestation(project: ProjectHandle, doc: dict[str, Any], *, model_digest: str) -> dict[str, Any]:
    """Check one stored attestation document and return its trusted statement.

    The statement must match its recorded digest and name ``model_digest`` as its subject; when the
    document carries a signature bundle, the bundle must verify with a trusted key and sign exactly
    this statement.

    Raises
    ------
    VerificationError
        Anything does not match (tampering or a different model).
    """
    statement = doc.get("statement")
    if not isinstance(statement, dict) or statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError("The attestation holds no gate statement; re-run `bastion gate run`.")
    if doc.get("statement_digest") != statement_digest(statement):
        raise VerificationError(
            "The stored gate attestation does not match its recorded digest: it was edited after the gate ran."
        )
    bundle = doc.get("bundle")
    if bundle is not None:
        from bastion.gates import _signing

        signed, signer = _signing.verify(project, bundle, predicate_type=PREDICATE_TYPE)
        if _canonical(signed) != _canonical(statement):
            raise VerificationError(
                "The gate attestation differs from the statement its signature covers: it was tampered with."
            )
        doc = {**doc, "verified_signer": signer}
    subjects = statement.get("subject") or []
    want = _hex(model_digest)
    if not any(isinstance(s, dict) and (s.get("digest") or {}).get("sha256") == want for s in subjects):
        raise VerificationError(
            f"The gate attestation is for a different artifact (expected sha256:{want}); re-run the gate."
        )
    return statement
