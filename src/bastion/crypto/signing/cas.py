"""Own-CA certificates trusted for certificate-mode signatures, shared in the metadata database.

Adding or removing a trusted CA is an audited admin action. The table is only a cache of those audited actions:
a row counts while the newest add/remove entry for its fingerprint is an add, that entry is intact in the hash
chain and (when the project has an audit key) covered by a signed checkpoint. A row inserted or edited behind
the audit chain's back is ignored (and reported by :func:`list_trusted_cas`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, select

from bastion.errors import ConfigError, KeyManagementError
from bastion.store.schema import trusted_cas

if TYPE_CHECKING:
    from bastion.audit.log import AuditEntry
    from bastion.protocols import ProjectHandle

__all__ = ["CA_ADD", "CA_REMOVE", "TrustedCa", "add_trusted_ca", "ca_fingerprint", "list_trusted_cas",
           "remove_trusted_ca", "trusted_ca_certificates"]

log = logging.getLogger("bastion.crypto")

CA_ADD = "keys.signing.ca.add"
CA_REMOVE = "keys.signing.ca.remove"


def ca_fingerprint(cert: x509.Certificate) -> str:
    """``sha256:<hex>`` of the certificate's DER encoding."""
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class TrustedCa:
    """One CA row and whether verification trusts it (``why`` says why not)."""

    fingerprint: str
    subject: str
    added_at: str
    added_by: str
    trusted: bool
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "fingerprint": self.fingerprint, "subject": self.subject,
                "added_at": self.added_at, "added_by": self.added_by, "trusted": self.trusted, "why": self.why}


def _parse(pem: bytes | str, source: str) -> list[x509.Certificate]:
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        certs = list(x509.load_pem_x509_certificates(data))
    except ValueError as e:
        raise ConfigError(f"{source} holds no PEM certificates: {e}.") from e
    for c in certs:
        try:
            is_ca = c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ConfigError(f"{source}: the certificate for {c.subject.rfc4514_string()} is not a CA certificate "
                              "(basicConstraints CA:TRUE); only CA certificates can be trusted roots.")
    return certs


def add_trusted_ca(project: ProjectHandle, pem: bytes | str, *, source: str = "the PEM text",
                   reason: str = "") -> list[TrustedCa]:
    """Trust the CA certificate(s) in ``pem`` for the whole deployment; each is one audited ``keys.signing.ca.add``."""
    certs = _parse(pem, source)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    out = []
    with project.transaction() as conn:
        for c in certs:
            fp = ca_fingerprint(c)
            text = c.public_bytes(serialization.Encoding.PEM).decode("ascii")
            subject = c.subject.rfc4514_string()
            conn.execute(delete(trusted_cas).where(trusted_cas.c.fingerprint == fp))
            conn.execute(trusted_cas.insert().values(fingerprint=fp, subject=subject[:2000], pem=text, added_at=now,
                                                     added_by=project.actor))
            project.record(conn, CA_ADD, fp, {"subject": subject, "not_after": c.not_valid_after_utc.isoformat(),
                                              "reason": reason})
            out.append(TrustedCa(fp, subject, now, project.actor, True))
    return out


def remove_trusted_ca(project: ProjectHandle, fingerprint: str, *, reason: str) -> TrustedCa:
    """Stop trusting the CA ``fingerprint`` (``sha256:<hex>``, or a unique prefix of it); audited."""
    with project.transaction() as conn:
        rows = conn.execute(select(trusted_cas).where(
            trusted_cas.c.fingerprint.startswith(fingerprint, autoescape=True))).all()
        if len(rows) != 1:
            known = ", ".join(r.fingerprint[:23] for r in rows) if rows else "none"
            raise KeyManagementError(f"{len(rows) or 'No'} trusted CA(s) match {fingerprint!r} (matches: {known}); "
                                     "give the fingerprint from `bastion keys signing ca list`.")
        row = rows[0]
        conn.execute(delete(trusted_cas).where(trusted_cas.c.fingerprint == row.fingerprint))
        project.record(conn, CA_REMOVE, row.fingerprint, {"subject": row.subject, "reason": reason})
    return TrustedCa(row.fingerprint, row.subject, row.added_at, row.added_by, False, "removed")


def _audited(project: ProjectHandle) -> dict[str, AuditEntry]:
    """The newest add/remove entry per fingerprint."""
    newest: dict[str, AuditEntry] = {}
    for e in project.audit.entries(action="keys.signing.ca."):
        if e.action in (CA_ADD, CA_REMOVE) and e.subject not in newest:
            newest[e.subject] = e
    return newest


def _proof(project: ProjectHandle, entry: AuditEntry) -> str:
    """Why ``entry`` does not prove itself ('' when it does): intact, linked, anchored by a checkpoint."""
    from bastion.audit.checkpoints import anchor
    from bastion.audit.log import canonical, entry_hash

    if entry_hash(entry.seq, entry.ts, entry.actor, entry.action, entry.subject, canonical(entry.details).decode(),
                  entry.prev_hash) != entry.hash:
        return f"its audit entry {entry.seq} was altered"
    following = project.audit.range(entry.seq + 1, entry.seq + 1)
    if following and following[0].prev_hash != entry.hash:
        return f"the audit chain breaks after its entry {entry.seq}"
    ok, why = anchor(project, entry, vouched=True)
    return "" if ok else f"its audit entry is not proven: {why}"


def list_trusted_cas(project: ProjectHandle) -> list[TrustedCa]:
    """Every CA row with whether verification trusts it."""
    with project.db.read() as conn:
        rows = conn.execute(select(trusted_cas).order_by(trusted_cas.c.added_at, trusted_cas.c.fingerprint)).all()
    audited = _audited(project) if rows else {}
    out = []
    for r in rows:
        why = ""
        try:
            certs = x509.load_pem_x509_certificates(str(r.pem).encode("ascii", "replace"))
        except ValueError:
            certs = []
        if len(certs) != 1 or ca_fingerprint(certs[0]) != r.fingerprint:
            why = "the stored certificate does not match its fingerprint (the row was edited)"
        else:
            entry = audited.get(r.fingerprint)
            if entry is None:
                why = "no audited `ca add` for it (inserted behind the audit chain's back)"
            elif entry.action != CA_ADD:
                why = f"its newest audited action is a removal (entry {entry.seq})"
            else:
                why = _proof(project, entry)
        if why:
            log.warning("trusted CA %s ignored: %s", r.fingerprint[:23], why)
        out.append(TrustedCa(r.fingerprint, r.subject, r.added_at, r.added_by, not why, why))
    return out


def trusted_ca_certificates(project: ProjectHandle) -> tuple[x509.Certificate, ...]:
    """The CA certificates verification may use: rows proven by the audit chain only."""
    with project.db.read() as conn:
        pems = {r.fingerprint: r.pem for r in conn.execute(select(trusted_cas.c.fingerprint, trusted_cas.c.pem))}
    if not pems:
        return ()
    good = {c.fingerprint for c in list_trusted_cas(project) if c.trusted}
    return tuple(x509.load_pem_x509_certificate(str(pems[fp]).encode("ascii")) for fp in sorted(good) if fp in pems)
