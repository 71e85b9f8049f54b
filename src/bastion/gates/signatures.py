"""Sign a registered model version (OMS bundle stored with it) and verify it again against the keyring.

The promotion rules call :func:`verify_version`; the CLI's ``bastion model sign|verify`` call both.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.crypto.signing.keys import SigningKey, load_signing_key
from bastion.crypto.signing.oms import (
    BUNDLE_MEDIA_TYPE,
    model_manifest_from_statement,
    parse_bundle,
    sign_model,
)
from bastion.crypto.signing.trust import TrustStore
from bastion.crypto.signing.verify import ModelMismatchError, verify_model
from bastion.errors import DataError, IntegrityError, VerificationError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["SIGNATURE_KIND", "SignatureStatus", "latest_signature", "sign_version", "verify_version"]

log = logging.getLogger("bastion.gates")

SIGNATURE_KIND = "signature"


@contextmanager
def _fresh_copy(project: ProjectHandle, ref: str) -> Iterator[Path]:
    # A fresh verified copy per call: a shared cache folder could hold stray files from earlier use.
    make = getattr(project, "tempdir", None)
    with (make() if callable(make) else tempfile.TemporaryDirectory()) as tmp:
        yield Path(project.model_path(ref, Path(tmp) / "artifact"))


@dataclass(frozen=True)
class SignatureStatus:
    """Whether a model version's latest signature holds, and why not."""

    valid: bool
    reason: str
    signer: str = ""
    key_fingerprint: str = ""
    files_checked: int = 0
    key_status: str | None = None
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    signed_at: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "reason": self.reason,
            "signer": self.signer,
            "key_fingerprint": self.key_fingerprint,
            "key_status": self.key_status,
            "files_checked": self.files_checked,
            "missing": list(self.missing),
            "extra": list(self.extra),
            "mismatched": list(self.mismatched),
            "signed_at": self.signed_at,
        }


def sign_version(
    project: ProjectHandle,
    ref: str,
    *,
    key_name: str | None = None,
    key: SigningKey | None = None,
    passphrase: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Sign the artifact of model version ``ref`` and store the bundle with it (kind ``"signature"``).

    Parameters
    ----------
    key_name
        Keyring key to use; default the project's only active key (or ``BASTION_SIGNING_KEY``).
    key
        An already loaded key (takes precedence over ``key_name``).
    passphrase
        Unlocks the keyring key; default ``BASTION_KEY_PASSPHRASE``.

    Returns
    -------
    dict
        The stored signature document: ``schema_version``, ``model``, ``artifact_digest``, ``key``,
        ``files``, ``root_digest``, ``signed_at``, ``signed_by`` and the OMS ``bundle``.
    """
    mv = project.get_model(ref)
    signing_key = key or load_signing_key(project, key_name, passphrase=passphrase)
    with _fresh_copy(project, mv.ref) as path:
        bundle = sign_model(path, signing_key, model_name=mv.ref, progress=progress)
    # Read back what was signed (cheap) so the document states the file count and root digest.
    manifest = model_manifest_from_statement(json.loads(parse_bundle(bundle).payload))
    doc: dict[str, Any] = {
        "schema_version": 1,
        "format": BUNDLE_MEDIA_TYPE,
        "model": mv.ref,
        "artifact_digest": mv.digest,
        "key": {
            "name": signing_key.name,
            "fingerprint": signing_key.fingerprint,
            "public_key": signing_key.public_key_pem,
            "mode": "certificate" if signing_key.certificate_chain else "key",
        },
        "files": len(manifest.files),
        "root_digest": manifest.root_digest,
        "signed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "signed_by": str(getattr(project, "actor", "") or project.settings.actor),
        "bundle": bundle,
    }
    project.attach(mv.ref, SIGNATURE_KIND, doc)
    log.info("signed %s with key %s (%s files)", mv.ref, signing_key.fingerprint, len(manifest.files))
    return doc


def latest_signature(project: ProjectHandle, ref: str) -> dict[str, Any] | None:
    """The most recent signature document stored with ``ref``, or None."""
    docs = project.attachments(ref, SIGNATURE_KIND)
    return docs[-1] if docs else None


def verify_version(
    project: ProjectHandle,
    ref: str,
    *,
    trust: TrustStore | None = None,
    allowed_signers: Iterable[str] | None = None,
    at: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SignatureStatus:
    """Re-hash the stored artifact of ``ref`` and check it against its latest signature and the keyring.

    A signature by a rotated key stays valid; by a revoked key it is refused. Never raises for a bad
    signature: the answer is in ``SignatureStatus.valid`` and ``reason``.

    Parameters
    ----------
    trust
        Default: the project's keyring and its own-CA roots (``keys/signing/ca/*.pem``).
    allowed_signers
        Restrict signers (``key:<name>``, ``sha256:<fingerprint>``, certificate e-mail/URI/DNS,
        ``cn:<name>``).
    """
    mv = project.get_model(ref)
    doc = latest_signature(project, mv.ref)
    if doc is None:
        return SignatureStatus(
            valid=False, reason=f"{mv.ref} has no signature; run `bastion model sign {mv.ref}`."
        )
    if not isinstance(doc, dict) or doc.get("schema_version") != 1 or "bundle" not in doc:
        return SignatureStatus(valid=False, reason=f"The signature document of {mv.ref} is malformed.")
    store = trust if trust is not None else TrustStore.from_project(project)
    if allowed_signers is not None:
        store = store.with_allowed_signers(allowed_signers)
    signed_at = doc.get("signed_at")
    try:
        with _fresh_copy(project, mv.ref) as path:
            result = verify_model(path, doc["bundle"], store, at=at, progress=progress)
    except ModelMismatchError as e:
        return SignatureStatus(
            valid=False, reason=str(e), missing=e.missing, extra=e.extra, mismatched=e.mismatched,
            signed_at=signed_at,
        )
    except (VerificationError, IntegrityError, DataError) as e:
        return SignatureStatus(valid=False, reason=str(e), signed_at=signed_at)
    reason = "signature valid"
    if result.signer.key_status == "rotated":
        reason = "signature valid (signed with a key that has since been rotated)"
    return SignatureStatus(
        valid=True,
        reason=reason,
        signer=result.signer.identity,
        key_fingerprint=result.signer.key_fingerprint,
        files_checked=result.files_checked,
        key_status=result.signer.key_status,
        signed_at=signed_at,
    )
