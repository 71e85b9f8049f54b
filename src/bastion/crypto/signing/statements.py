"""Sign and verify arbitrary in-toto Statements (gate results, attestations) in the same bundle format.

Used by the gates to attest a gate run; model signatures use :func:`bastion.crypto.signing.sign_model`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from bastion.crypto.signing.keys import SigningKey
from bastion.crypto.signing.oms import STATEMENT_TYPE, build_bundle
from bastion.crypto.signing.trust import TrustStore
from bastion.crypto.signing.verify import VerifiedStatement, verify_bundle
from bastion.errors import DataError, VerificationError

__all__ = ["check_statement", "sign_statement", "verify_statement", "verify_statement_detailed"]


def check_statement(statement: Mapping[str, Any]) -> None:
    """Raise DataError unless ``statement`` is an in-toto Statement v1 with subjects and a predicate type."""
    if not isinstance(statement, Mapping):
        raise DataError(f"A statement must be a JSON object; got {type(statement).__name__}.")
    if statement.get("_type") != STATEMENT_TYPE:
        raise DataError(f"A statement's '_type' must be {STATEMENT_TYPE!r}; got {statement.get('_type')!r}.")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise DataError("A statement needs a non-empty 'subject' list.")
    for s in subjects:
        digest = s.get("digest") if isinstance(s, Mapping) else None
        if not isinstance(digest, Mapping) or not digest or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digest.items()
        ):
            raise DataError(f"Each subject needs a 'digest' object of algorithm -> hex; got {s!r}.")
    if not isinstance(statement.get("predicateType"), str) or not statement["predicateType"]:
        raise DataError("A statement needs a 'predicateType' string.")


def sign_statement(statement: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """Sign an in-toto Statement v1 and return the Sigstore bundle (DSSE envelope) as a dict.

    Parameters
    ----------
    statement
        ``{"_type": "https://in-toto.io/Statement/v1", "subject": [...], "predicateType": ...,
        "predicate": ...}``; it must be JSON-serializable.
    key
        From :func:`bastion.crypto.signing.load_signing_key`.
    """
    check_statement(statement)
    try:
        return build_bundle(statement, key.private_key, certificate_chain=key.certificate_chain)
    except (TypeError, ValueError) as e:
        raise DataError(f"The statement is not JSON-serializable: {e}.") from e


def _trust(trust: Any) -> TrustStore:
    if isinstance(trust, TrustStore):
        return trust
    if hasattr(trust, "settings"):  # a Project: its keyring and CA folder
        return TrustStore.from_project(trust)
    raise TypeError(f"trust must be a TrustStore or a Project; got {type(trust).__name__}.")


def verify_statement_detailed(
    bundle: object,
    trust: TrustStore | Any,
    *,
    predicate_type: str | None = None,
    at: dt.datetime | None = None,
) -> VerifiedStatement:
    """Like :func:`verify_statement`, also returning who signed."""
    verified = verify_bundle(bundle, _trust(trust), at=at)
    try:
        check_statement(verified.statement)
    except DataError as e:
        raise VerificationError(f"The signed statement is malformed: {e}") from e
    if predicate_type is not None and verified.statement.get("predicateType") != predicate_type:
        raise VerificationError(
            f"Expected a statement of predicate type {predicate_type!r}; "
            f"got {verified.statement.get('predicateType')!r}."
        )
    return verified


def verify_statement(
    bundle: object,
    trust: TrustStore | Any,
    *,
    predicate_type: str | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Verify a bundle made by :func:`sign_statement` and return the statement it carries.

    ``trust`` is a :class:`TrustStore`, or a Project (its keyring and own-CA roots).

    Raises
    ------
    VerificationError
        Bad signature, untrusted/revoked key, invalid certificate, signer not allowed,
        or wrong predicate type.
    """
    return verify_statement_detailed(bundle, trust, predicate_type=predicate_type, at=at).statement
