"""Explicit trust store for signature verification: allowed public keys, own-CA roots, allowed signers.

Trust comes from the operator (project keyring, policy, files given on the command line), never from the
signature itself, and never from the public web CA bundle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.crypto.signing.keys import KeyRecord, project_keyring, public_key_fingerprint, signing_dir
from bastion.crypto.signing.oms import check_ec_key, key_hint
from bastion.errors import ConfigError, KeyManagementError

if TYPE_CHECKING:
    from bastion.audit.log import AuditEntry
    from bastion.protocols import ProjectHandle

__all__ = ["CA_DIR", "TrustStore", "TrustedKey"]

# Own-CA root (and intermediate) certificates a project trusts: PEM files in <home>/keys/signing/ca/.
CA_DIR = "ca"


@dataclass(frozen=True)
class TrustedKey:
    """A public key the operator trusts, with its keyring status ("active", "rotated" or "revoked")."""

    name: str
    public_key: ec.EllipticCurvePublicKey
    status: str = "active"
    revoked_at: str | None = None
    revoked_reason: str | None = None

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.public_key)

    @property
    def hint(self) -> str:
        return key_hint(self.public_key)


_MADE = ("keys.signing.init", "keys.signing.rotate")
_REVOKE = "keys.signing.revoke"


def _proven_keys(project: ProjectHandle, records: Iterable[KeyRecord]) -> list[TrustedKey]:
    """The keyring rows held to the audit chain (the keyring is a shared database document, a cache).

    A key counts only when an intact ``keys.signing.init``/``rotate`` entry names its fingerprint and a signed
    checkpoint vouches for it (when the project has an audit key); any ``keys.signing.revoke`` entry for it
    revokes it, whatever the row says (a revocation needs no proof: it only takes trust away). A row whose
    public key is not the fingerprint it claims, or that no audited entry made, is refused as revoked, with why.
    """
    recs = list(records)
    audit = getattr(project, "audit", None)
    if audit is None or not recs:
        return [TrustedKey(r.name, r.load_public_key(), r.status, r.revoked_at, r.revoked_reason) for r in recs]
    from bastion.audit.checkpoints import anchor
    from bastion.audit.log import canonical, entry_hash

    made: dict[str, AuditEntry] = {}
    revoked: dict[str, AuditEntry] = {}
    for e in audit.entries(action="keys.signing.", newest_first=False):
        fp = e.details.get("fingerprint")
        if not isinstance(fp, str):
            continue
        if e.action in _MADE:
            made.setdefault(fp, e)
        elif e.action == _REVOKE:
            revoked.setdefault(fp, e)
    out = []
    for r in recs:
        pub = r.load_public_key()
        status, at, why = r.status, r.revoked_at, r.revoked_reason
        fp = public_key_fingerprint(pub)
        problem = ""
        if fp != r.fingerprint:
            problem = f"its public key has fingerprint {fp}, not the {r.fingerprint} the keyring row claims (edited)"
        elif fp in revoked:
            e = revoked[fp]
            status, at, why = "revoked", r.revoked_at or e.ts, str(e.details.get("reason") or r.revoked_reason or "")
        elif fp not in made:
            problem = (f"no audited keys.signing.init or rotate names {fp[:23]}…: the keyring row was added in the "
                       "database outside Bastion")
        else:
            e = made[fp]
            if entry_hash(e.seq, e.ts, e.actor, e.action, e.subject, canonical(e.details).decode(),
                          e.prev_hash) != e.hash:
                problem = f"its audit entry {e.seq} was altered"
            else:
                ok, reason = anchor(project, e, vouched=True)
                if not ok:
                    problem = f"its audit entry {e.seq} is not proven: {reason}"
        if problem:
            status, at, why = "revoked", r.revoked_at or r.created, f"not trusted: {problem}"
        out.append(TrustedKey(r.name, pub, status, at, why))
    return out


def _read(source: str | bytes | os.PathLike[str], what: str) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        return source.encode("ascii")
    try:
        return Path(source).read_bytes()
    except OSError as e:
        raise ConfigError(f"Cannot read the {what} {source}: {e.strerror}.") from e


@dataclass(frozen=True)
class TrustStore:
    """What a verifier accepts.

    ``keys``: trusted public keys (key-mode signatures). ``ca_certificates``: trust anchors for
    certificate-mode signatures (the user's own CA). ``allowed_signers``: when not empty, the signer must
    match one entry: ``key:<name>``, a key fingerprint ``sha256:<hex>``, a certificate SAN value
    (e-mail, URI or DNS name) or ``cn:<common name>``.
    """

    keys: tuple[TrustedKey, ...] = ()
    ca_certificates: tuple[x509.Certificate, ...] = ()
    allowed_signers: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.keys and not self.ca_certificates

    @classmethod
    def from_project(cls, project: ProjectHandle, *, allowed_signers: Iterable[str] = ()) -> TrustStore:
        """The project's keyring (every key with its status), the CA certificates trusted in its database (proven by
        the audit chain) and the PEM roots in this machine's ``keys/signing/ca/``."""
        directory = signing_dir(project)
        keys = tuple(_proven_keys(project, project_keyring(project).records()))
        from bastion.crypto.signing.cas import trusted_ca_certificates

        # the deployment's CAs (database, audited: `bastion keys signing ca add`), then this machine's folder
        cas: list[x509.Certificate] = list(trusted_ca_certificates(project)) if hasattr(project, "db") else []
        ca_dir = directory / CA_DIR
        if ca_dir.is_dir():
            for p in sorted(ca_dir.glob("*.pem")):
                cas.extend(c for c in _load_certs(p.read_bytes(), str(p)) if c not in cas)
        return cls(keys=keys, ca_certificates=tuple(cas), allowed_signers=tuple(allowed_signers))

    @classmethod
    def from_pem(
        cls,
        *,
        public_keys: Iterable[str | bytes | os.PathLike[str]] = (),
        ca_certificates: Iterable[str | bytes | os.PathLike[str]] = (),
        allowed_signers: Iterable[str] = (),
    ) -> TrustStore:
        """Trust built from PEM files (paths) or PEM text: public keys and CA certificates."""
        keys = []
        for i, src in enumerate(public_keys):
            data = _read(src, "public key")
            try:
                pk = serialization.load_pem_public_key(data)
            except ValueError as e:
                raise ConfigError(f"Trusted public key #{i + 1} is not a PEM public key: {e}.") from e
            try:
                ec_pk = check_ec_key(pk)
            except KeyManagementError as e:
                raise ConfigError(f"Trusted public key #{i + 1}: {e}") from e
            if isinstance(src, os.PathLike):
                name = Path(src).stem
            elif isinstance(src, str) and not src.lstrip().startswith("-"):
                name = Path(src).stem
            else:
                name = f"key{i + 1}"
            keys.append(TrustedKey(name=name, public_key=ec_pk))
        cas: list[x509.Certificate] = []
        for src in ca_certificates:
            cas.extend(_load_certs(_read(src, "CA certificate"), str(src)[:60]))
        return cls(keys=tuple(keys), ca_certificates=tuple(cas), allowed_signers=tuple(allowed_signers))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".") -> TrustStore:
        """Trust from a policy's ``signing`` section: ``keys``, ``ca_certificates`` (paths relative to
        ``base_dir``) and ``allowed_signers``."""
        unknown = set(config) - {"keys", "ca_certificates", "allowed_signers"}
        if unknown:
            raise ConfigError(
                f"Unknown signing trust settings: {', '.join(sorted(unknown))}. "
                "Known: keys, ca_certificates, allowed_signers."
            )
        base = Path(base_dir)

        def paths(key: str) -> list[Path]:
            raw = config.get(key, [])
            if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
                raise ConfigError(f"Signing trust setting '{key}' must be a list of file paths; got {raw!r}.")
            return [p if p.is_absolute() else base / p for p in map(Path, raw)]

        signers = config.get("allowed_signers", [])
        if not isinstance(signers, list) or not all(isinstance(s, str) for s in signers):
            raise ConfigError(f"'allowed_signers' must be a list of strings; got {signers!r}.")
        return cls.from_pem(
            public_keys=paths("keys"), ca_certificates=paths("ca_certificates"), allowed_signers=signers
        )

    def merged(self, other: TrustStore) -> TrustStore:
        """Keys and roots of both; allowed signers of both (an empty list on either side means "any")."""
        seen = {k.fingerprint for k in self.keys}
        keys = self.keys + tuple(k for k in other.keys if k.fingerprint not in seen)
        cas = self.ca_certificates + tuple(c for c in other.ca_certificates if c not in self.ca_certificates)
        if self.allowed_signers and other.allowed_signers:
            signers = tuple(dict.fromkeys(self.allowed_signers + other.allowed_signers))
        else:
            signers = self.allowed_signers or other.allowed_signers
        return TrustStore(keys=keys, ca_certificates=cas, allowed_signers=signers)

    def with_allowed_signers(self, signers: Iterable[str]) -> TrustStore:
        """The same trust, restricted to ``signers``."""
        return replace(self, allowed_signers=tuple(signers))

    def key_status(self, public_key: ec.EllipticCurvePublicKey) -> TrustedKey | None:
        """The trusted entry for ``public_key`` (any status), if the store knows it."""
        fp = public_key_fingerprint(public_key)
        for k in self.keys:
            if k.fingerprint == fp:
                return k
        return None


def _load_certs(data: bytes, source: str) -> list[x509.Certificate]:
    try:
        return list(x509.load_pem_x509_certificates(data))
    except ValueError as e:
        raise ConfigError(f"{source} holds no PEM certificates: {e}.") from e
