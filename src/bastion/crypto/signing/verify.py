"""Verification of OMS bundles and signed models, stricter than upstream ``model_signing``.

Certificates must be valid now, signers must be allowed, revoked keys are refused, and a model that differs
from its signature is reported file by file.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.crypto.signing.hashing import hash_model
from bastion.crypto.signing.keys import public_key_fingerprint
from bastion.crypto.signing.oms import (
    ModelManifest,
    ParsedBundle,
    check_ec_key,
    decode_statement,
    model_manifest_from_statement,
    parse_bundle,
    verify_envelope_signature,
)
from bastion.crypto.signing.trust import TrustStore
from bastion.errors import KeyManagementError, VerificationError

__all__ = [
    "ModelMismatchError",
    "ModelVerification",
    "SignerInfo",
    "VerifiedStatement",
    "compare_manifest",
    "verify_bundle",
    "verify_model",
]


@dataclass(frozen=True)
class SignerInfo:
    """Who signed: the key (and its keyring status) or the certificate and its identities."""

    kind: Literal["key", "certificate"]
    identity: str
    key_fingerprint: str
    key_status: str | None = None
    identities: tuple[str, ...] = ()
    certificate_subject: str | None = None
    certificate_not_after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "identity": self.identity,
            "key_fingerprint": self.key_fingerprint,
            "key_status": self.key_status,
            "identities": list(self.identities),
            "certificate_subject": self.certificate_subject,
            "certificate_not_after": self.certificate_not_after,
        }


@dataclass(frozen=True)
class VerifiedStatement:
    """An in-toto statement whose signature verified against the trust store."""

    statement: dict[str, Any]
    signer: SignerInfo


@dataclass(frozen=True)
class ModelVerification:
    """A model that matches its signature."""

    model_name: str
    root_digest: str
    files_checked: int
    signer: SignerInfo
    files: Mapping[str, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": True,
            "model_name": self.model_name,
            "root_digest": self.root_digest,
            "files_checked": self.files_checked,
            "signer": self.signer.to_dict(),
        }


class ModelMismatchError(VerificationError):
    """The model on disk differs from the signed manifest; the attributes name the files."""

    def __init__(
        self, *, missing: tuple[str, ...], extra: tuple[str, ...], mismatched: tuple[str, ...]
    ) -> None:
        parts = []
        if mismatched:
            parts.append(f"digest mismatch in {', '.join(mismatched)}")
        if missing:
            parts.append(f"missing files {', '.join(missing)}")
        if extra:
            parts.append(f"extra files not covered by the signature {', '.join(extra)}")
        super().__init__(
            "The model does not match its signature: "
            + "; ".join(parts)
            + ". The artifact was changed after signing; restore it or re-sign it with a trusted key."
        )
        self.missing = missing
        self.extra = extra
        self.mismatched = mismatched


def _utc(t: dt.datetime | None) -> dt.datetime:
    if t is None:
        return dt.datetime.now(dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _cert_identities(cert: x509.Certificate) -> tuple[str, ...]:
    ids: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ids.extend(str(v) for v in san.get_values_for_type(x509.RFC822Name))
        ids.extend(str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier))
        ids.extend(str(v) for v in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        ids.append(f"cn:{attr.value!s}")
    return tuple(ids)


def _check_leaf_usage(cert: x509.Certificate) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            raise VerificationError(
                "The signing certificate is a CA certificate; sign with an end-entity certificate."
            )
    except x509.ExtensionNotFound:
        pass
    usable = False
    try:
        usable = cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        pass
    if not usable:
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            usable = ExtendedKeyUsageOID.CODE_SIGNING in eku
        except x509.ExtensionNotFound:
            pass
    if not usable:
        raise VerificationError(
            "The signing certificate is not for signing: it needs key usage digitalSignature "
            "or extended key usage codeSigning."
        )


def _verify_certificate_signer(parsed: ParsedBundle, trust: TrustStore, at: dt.datetime) -> SignerInfo:
    leaf = parsed.certificates[0]
    if not trust.ca_certificates:
        raise VerificationError(
            "The signature uses a certificate, but the trust store has no CA certificates. Add your CA's "
            "root to <project home>/keys/signing/ca/ or pass --ca-cert."
        )
    # Our own check first so the message says which bound was crossed.
    if at < leaf.not_valid_before_utc:
        raise VerificationError(
            f"The signing certificate is not valid yet (valid from {leaf.not_valid_before_utc.isoformat()})."
        )
    if at > leaf.not_valid_after_utc:
        raise VerificationError(
            f"The signing certificate expired on {leaf.not_valid_after_utc.isoformat()}; "
            "re-sign with a current certificate."
        )
    verifier = (
        xv.PolicyBuilder()
        .store(xv.Store(list(trust.ca_certificates)))
        .time(at)
        .extension_policies(
            # Usage of the leaf is checked below (digitalSignature or codeSigning), not web PKI rules.
            ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=xv.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, list(parsed.certificates[1:]))
    except xv.VerificationError as e:
        raise VerificationError(
            f"The signing certificate does not chain to a trusted CA, or a certificate in its chain is not "
            f"valid now: {e}."
        ) from e
    _check_leaf_usage(leaf)
    try:
        pk = check_ec_key(leaf.public_key())
    except KeyManagementError as e:
        raise VerificationError(f"The signing certificate's key is not usable: {e}") from e
    if not verify_envelope_signature(parsed, pk):
        raise VerificationError("The signature does not verify with the signing certificate's key.")
    known = trust.key_status(pk)
    if known is not None and known.status == "revoked":
        raise VerificationError(
            f"The signing key '{known.name}' ({known.fingerprint}) was revoked on {known.revoked_at}; "
            "signatures made with it are refused."
        )
    ids = _cert_identities(leaf)
    return SignerInfo(
        kind="certificate",
        identity=ids[0] if ids else leaf.subject.rfc4514_string(),
        key_fingerprint=public_key_fingerprint(pk),
        key_status=known.status if known else None,
        identities=ids,
        certificate_subject=leaf.subject.rfc4514_string(),
        certificate_not_after=leaf.not_valid_after_utc.isoformat(),
    )


def _verify_key_signer(parsed: ParsedBundle, trust: TrustStore) -> SignerInfo:
    if not trust.keys:
        raise VerificationError(
            "The signature was made with a bare key, but the trust store has no public keys. Create or "
            "import a signing key (`bastion keys signing init`) or pass --public-key."
        )
    candidates = [k for k in trust.keys if parsed.key_hint is None or k.hint == parsed.key_hint]
    if not candidates:
        raise VerificationError(
            f"The signature names a key (hint {parsed.key_hint}) that is not in the trust store; "
            "it was signed by an unknown key."
        )
    for k in candidates:
        if verify_envelope_signature(parsed, k.public_key):
            if k.status == "revoked":
                raise VerificationError(
                    f"The signing key '{k.name}' ({k.fingerprint}) was revoked on {k.revoked_at} "
                    f"({k.revoked_reason or 'no reason given'}); signatures made with it are refused."
                )
            return SignerInfo(
                kind="key",
                identity=f"key:{k.name}",
                key_fingerprint=k.fingerprint,
                key_status=k.status,
                identities=(f"key:{k.name}", k.fingerprint),
            )
    raise VerificationError(
        "The signature does not verify with the trusted key(s): "
        "the payload was altered or another key signed it."
    )


def verify_bundle(bundle: object, trust: TrustStore, *, at: dt.datetime | None = None) -> VerifiedStatement:
    """Check a bundle's signature against ``trust`` and return its statement and signer.

    Raises
    ------
    VerificationError
        Malformed bundle, unknown/revoked key, untrusted or expired certificate, signer not allowed,
        or a signature that does not verify.
    """
    parsed = parse_bundle(bundle)
    if parsed.certificates:
        signer = _verify_certificate_signer(parsed, trust, _utc(at))
    else:
        signer = _verify_key_signer(parsed, trust)
    if trust.allowed_signers and not set(signer.identities) & set(trust.allowed_signers):
        raise VerificationError(
            f"The signer {signer.identity} is not an allowed signer; "
            f"allowed: {', '.join(trust.allowed_signers)}."
        )
    return VerifiedStatement(statement=decode_statement(parsed), signer=signer)


def compare_manifest(expected: Mapping[str, str], actual: Mapping[str, str]) -> None:
    """Raise :class:`ModelMismatchError` naming every missing, extra and changed file."""
    missing = tuple(sorted(set(expected) - set(actual)))
    extra = tuple(sorted(set(actual) - set(expected)))
    mismatched = tuple(sorted(n for n in set(expected) & set(actual) if expected[n] != actual[n]))
    if missing or extra or mismatched:
        raise ModelMismatchError(missing=missing, extra=extra, mismatched=mismatched)


def verify_model(
    model_path: str | os.PathLike[str],
    bundle: object,
    trust: TrustStore,
    *,
    at: dt.datetime | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ModelVerification:
    """Verify a model directory (or file) against an OMS bundle.

    The signature and signer are checked first, then every file is re-hashed in parallel.

    Raises
    ------
    VerificationError
        Signature or trust failures; :class:`ModelMismatchError` when files differ.
    """
    verified = verify_bundle(bundle, trust, at=at)
    manifest: ModelManifest = model_manifest_from_statement(verified.statement)
    actual = hash_model(model_path, ignore_paths=manifest.ignore_paths, workers=workers, progress=progress)
    compare_manifest(manifest.files, actual)
    return ModelVerification(
        model_name=manifest.model_name,
        root_digest=manifest.root_digest,
        files_checked=len(actual),
        signer=verified.signer,
        files=dict(actual),
    )
