"""OpenSSF Model Signing (OMS) format: Sigstore bundle v0.3 around a DSSE envelope of an in-toto Statement.

Byte-compatible with the upstream ``model_signing`` package (its "key" and "certificate" modes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.crypto.signing.hashing import DEFAULT_IGNORE_PATHS, hash_model, root_digest, sort_names
from bastion.errors import KeyManagementError, VerificationError

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from bastion.crypto.signing.keys import SigningKey

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "MODEL_PREDICATE_TYPE",
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "ModelManifest",
    "ParsedBundle",
    "build_bundle",
    "build_model_statement",
    "check_ec_key",
    "decode_statement",
    "ec_hash",
    "key_hint",
    "model_manifest_from_statement",
    "pae",
    "parse_bundle",
    "sign_model",
    "verify_envelope_signature",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MODEL_PREDICATE_TYPE = "https://model_signing/signature/v1.0"

_CURVES = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384}
_MAX_BUNDLE_SIGNATURES = 1


def check_ec_key(public_key: object) -> ec.EllipticCurvePublicKey:
    """Return ``public_key`` if it is an EC key on P-256 or P-384, else raise KeyManagementError."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise KeyManagementError(
            f"Signing keys must be elliptic-curve keys (P-256 or P-384); got {type(public_key).__name__}."
        )
    if public_key.curve.name not in _CURVES:
        raise KeyManagementError(
            f"Signing keys must use curve P-256 or P-384; got {public_key.curve.name}."
        )
    return public_key


def ec_hash(public_key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The ECDSA hash that goes with the key's curve (SHA-256 for P-256, SHA-384 for P-384)."""
    return _CURVES[check_ec_key(public_key).curve.name]()


def key_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    """The public key hint upstream writes into bundles: SHA-256 hex of the PEM SubjectPublicKeyInfo."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature actually covers."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class ModelManifest:
    """The signed content of a model signature: one SHA-256 digest per file.

    ``files`` maps resource names (POSIX paths relative to the model, "." for a single-file model)
    to lowercase hex digests.
    """

    model_name: str
    files: Mapping[str, str]
    ignore_paths: tuple[str, ...]
    root_digest: str


def build_model_statement(
    model_name: str, digests: Mapping[str, str], *, ignore_paths: Sequence[str] = DEFAULT_IGNORE_PATHS
) -> dict[str, Any]:
    """The in-toto Statement v1 for a model, exactly in upstream's v1.0 predicate layout."""
    names = sort_names(digests)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest(digests)}}],
        "predicateType": MODEL_PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                **({"ignore_paths": list(ignore_paths)} if ignore_paths else {}),
            },
            "resources": [{"name": n, "algorithm": "sha256", "digest": digests[n]} for n in names],
        },
    }


def _is_hex_digest(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 64:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return value == value.lower()


def model_manifest_from_statement(statement: Mapping[str, Any]) -> ModelManifest:
    """Check a model statement's shape and internal consistency and return its manifest."""
    if statement.get("predicateType") != MODEL_PREDICATE_TYPE:
        raise VerificationError(
            f"Expected a model signature (predicate type {MODEL_PREDICATE_TYPE}); "
            f"got {statement.get('predicateType')!r}."
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise VerificationError("A model signature must have exactly one subject (the model).")
    subject = subjects[0]
    expected_root = (subject.get("digest") or {}).get("sha256")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise VerificationError("The model signature has no predicate object.")
    ser = predicate.get("serialization")
    if not isinstance(ser, dict) or ser.get("method") != "files" or ser.get("hash_type") != "sha256":
        raise VerificationError(
            f"Only the 'files' serialization with SHA-256 is supported; got {ser!r}. "
            "Re-sign the model with per-file SHA-256 digests."
        )
    if ser.get("allow_symlinks") not in (False, None):
        raise VerificationError("The signature allows symbolic links; Bastion refuses linked models.")
    ignore = ser.get("ignore_paths", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise VerificationError("The signature's ignore_paths must be a list of strings.")
    for p in ignore:
        # An ignore entry reaching outside the model or covering it whole would hide files.
        if p in ("", ".", "..") or p.startswith(("/", "../")):
            raise VerificationError(f"The signature ignores the path {p!r}, which is not allowed.")
    resources = predicate.get("resources")
    if not isinstance(resources, list):
        raise VerificationError("The model signature has no list of resources.")
    files: dict[str, str] = {}
    for r in resources:
        if not isinstance(r, dict) or r.get("algorithm") != "sha256" or not _is_hex_digest(r.get("digest")):
            raise VerificationError(f"Malformed resource in the model signature: {r!r}.")
        name = r.get("name")
        if not isinstance(name, str) or not name or name in files:
            raise VerificationError(f"Missing or duplicate resource name in the model signature: {name!r}.")
        files[name] = r["digest"]
    # Upstream hashes the digests in the order they appear; we accept either that order or canonical order.
    h = hashlib.sha256()
    for r in resources:
        h.update(bytes.fromhex(r["digest"]))
    if expected_root not in (h.hexdigest(), root_digest(files)):
        raise VerificationError(
            "The model signature is inconsistent: its subject digest does not match its per-file digests."
        )
    return ModelManifest(
        model_name=str(subject.get("name", "")),
        files=files,
        ignore_paths=tuple(ignore),
        root_digest=str(expected_root),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"The bundle's {what} must be a base64 string; got {type(value).__name__}.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VerificationError(f"The bundle's {what} is not valid base64.") from e


def build_bundle(
    statement: Mapping[str, Any],
    private_key: ec.EllipticCurvePrivateKey,
    *,
    certificate_chain: Sequence[x509.Certificate] = (),
) -> dict[str, Any]:
    """Sign ``statement`` and wrap it as a Sigstore bundle v0.3 (DSSE envelope).

    With a certificate chain (leaf first) the bundle carries the chain, else a public key hint.
    """
    public_key = check_ec_key(private_key.public_key())
    payload = json.dumps(statement, indent=2, sort_keys=False).encode("utf-8")
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(ec_hash(public_key)))
    material: dict[str, Any]
    if certificate_chain:
        if certificate_chain[0].public_key() != public_key:
            raise KeyManagementError(
                "The signing certificate does not belong to the signing key; pass the certificate "
                "issued for this key first in the chain."
            )
        material = {
            "x509CertificateChain": {
                "certificates": [
                    {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))} for c in certificate_chain
                ]
            },
            "tlogEntries": [],
        }
    else:
        material = {"publicKey": {"hint": key_hint(public_key)}, "tlogEntries": []}
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": _b64(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": _b64(signature), "keyid": ""}],
        },
    }


@dataclass(frozen=True)
class ParsedBundle:
    """A bundle parsed into inert parts; nothing in it is trusted yet."""

    payload: bytes
    payload_type: str
    signature: bytes
    key_hint: str | None
    certificates: tuple[x509.Certificate, ...]


def parse_bundle(doc: object) -> ParsedBundle:
    """Parse a bundle document (dict, JSON text or bytes) without trusting anything in it."""
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise VerificationError(f"The signature bundle is not valid JSON: {e}.") from e
    if not isinstance(doc, dict):
        raise VerificationError(f"A signature bundle must be a JSON object; got {type(doc).__name__}.")
    if doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise VerificationError(
            f"Expected a Sigstore bundle of media type {BUNDLE_MEDIA_TYPE}; got {doc.get('mediaType')!r}."
        )
    env = doc.get("dsseEnvelope")
    if not isinstance(env, dict):
        raise VerificationError("The bundle holds no DSSE envelope ('dsseEnvelope').")
    payload_type = env.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"Expected DSSE payload type {PAYLOAD_TYPE}; got {payload_type!r}.")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or len(sigs) != _MAX_BUNDLE_SIGNATURES or not isinstance(sigs[0], dict):
        raise VerificationError("The DSSE envelope must carry exactly one signature.")
    payload = _unb64(env.get("payload"), "payload")
    signature = _unb64(sigs[0].get("sig"), "signature")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise VerificationError("The bundle has no verification material.")
    hint: str | None = None
    certs: list[x509.Certificate] = []
    if "x509CertificateChain" in material:
        chain = material["x509CertificateChain"]
        entries = chain.get("certificates") if isinstance(chain, dict) else None
        if not isinstance(entries, list) or not entries:
            raise VerificationError("The bundle's certificate chain is empty.")
        for i, entry in enumerate(entries):
            raw = _unb64(entry.get("rawBytes") if isinstance(entry, dict) else None, f"certificate {i}")
            try:
                certs.append(x509.load_der_x509_certificate(raw))
            except ValueError as e:
                raise VerificationError(f"Certificate {i} in the bundle is not valid DER: {e}.") from e
    elif "publicKey" in material:
        pk = material["publicKey"]
        raw_hint = pk.get("hint") if isinstance(pk, dict) else None
        if raw_hint is not None and not isinstance(raw_hint, str):
            raise VerificationError("The bundle's public key hint must be a string.")
        hint = raw_hint or None
    else:
        raise VerificationError("The bundle names neither a public key nor a certificate chain.")
    return ParsedBundle(
        payload=payload,
        payload_type=payload_type,
        signature=signature,
        key_hint=hint,
        certificates=tuple(certs),
    )


def verify_envelope_signature(parsed: ParsedBundle, public_key: ec.EllipticCurvePublicKey) -> bool:
    """True when the envelope's signature over the DSSE PAE verifies with ``public_key``."""
    try:
        signed = pae(parsed.payload_type, parsed.payload)
        public_key.verify(parsed.signature, signed, ec.ECDSA(ec_hash(public_key)))
    except InvalidSignature:
        return False
    return True


def decode_statement(parsed: ParsedBundle) -> dict[str, Any]:
    """The in-toto Statement inside a (signature-verified) envelope."""
    try:
        statement = json.loads(parsed.payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VerificationError(f"The signed payload is not JSON: {e}.") from e
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"The signed payload is not an in-toto Statement ({STATEMENT_TYPE}).")
    return statement


def sign_model(
    model_path: str | os.PathLike[str],
    key: SigningKey,
    *,
    model_name: str | None = None,
    ignore_paths: Sequence[str] = DEFAULT_IGNORE_PATHS,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Hash every file of a model in parallel and return its OMS signature bundle.

    Parameters
    ----------
    model_path
        A model directory or a single model file. Keep the bundle outside it (or list it in ``ignore_paths``).
    key
        The signing key; with a certificate chain the bundle is in certificate mode.
    model_name
        Informative name in the statement's subject; default the last path component.
    """
    path = Path(model_path)
    digests = hash_model(path, ignore_paths=ignore_paths, workers=workers, progress=progress)
    name = model_name or path.resolve().name
    statement = build_model_statement(name, digests, ignore_paths=ignore_paths)
    return build_bundle(statement, key.private_key, certificate_chain=key.certificate_chain)
