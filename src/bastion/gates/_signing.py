"""Bridge to the signing work (``bastion.crypto.signing``): sign and verify gate statements.

Signing is best effort (no key: the attestation is stored unsigned); verification is strict.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

log = logging.getLogger("bastion.gates")


def load_key(project: ProjectHandle) -> Any | None:
    """The project's signing key, or None when the project has none usable (gate still runs, unsigned)."""
    from bastion.crypto.signing import load_signing_key

    try:
        return load_signing_key(project)
    except BastionError as e:
        log.info("no signing key for the gate attestation: %s", e)
        return None


def sign(statement: dict[str, Any], key: Any) -> dict[str, Any]:
    """A Sigstore bundle (DSSE) over ``statement``."""
    from bastion.crypto.signing import sign_statement

    return sign_statement(statement, key)


def signer_of(key: Any) -> dict[str, Any]:
    return {"name": str(getattr(key, "name", "")), "fingerprint": str(getattr(key, "fingerprint", ""))}


def verify(project: ProjectHandle, bundle: Any, *, predicate_type: str) -> tuple[dict[str, Any], str]:
    """Verify ``bundle`` against the project's trust store; return (statement, signer identity).

    Raises
    ------
    VerificationError
        Bad signature, untrusted or revoked key, wrong predicate type.
    """
    from bastion.crypto.signing import verify_statement_detailed

    verified = verify_statement_detailed(bundle, project, predicate_type=predicate_type)
    return dict(verified.statement), str(verified.signer.identity)
