"""Signing keys: generate, store encrypted (scrypt + AES-GCM), rotate, revoke; load for signing.

Private keys live under ``<project home>/keys/signing/``; public keys and their status in the metadata database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bastion.crypto.signing.oms import check_ec_key
from bastion.errors import KeyManagementError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "PASSPHRASE_ENV",
    "KeyRecord",
    "Keyring",
    "SigningKey",
    "decrypt_private_key",
    "encrypt_private_key",
    "generate_private_key",
    "init_signing_key",
    "list_signing_keys",
    "load_signing_key",
    "project_keyring",
    "public_key_fingerprint",
    "revoke_signing_key",
    "rotate_signing_key",
    "signing_dir",
]

logger = logging.getLogger("bastion.crypto.signing")

KEY_ENV = "BASTION_SIGNING_KEY"
KEY_FILE_ENV = "BASTION_SIGNING_KEY_FILE"
PASSPHRASE_ENV = "BASTION_KEY_PASSPHRASE"  # noqa: S105 - the variable name, not a secret

_FILE_FORMAT = "bastion-signing-key"
_FILE_VERSION = 1
# scrypt cost: n=2**15, r=8 uses 32 MiB and ~0.1 s, the interactive-login setting RFC 7914 suggests.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384"}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Status = Literal["active", "rotated", "revoked"]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def public_key_fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """``sha256:<hex>`` over the DER SubjectPublicKeyInfo: the key's stable id."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _public_pem(public_key: ec.EllipticCurvePublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """A private key ready to sign, with an optional certificate chain (leaf first) from the user's CA."""

    name: str
    private_key: ec.EllipticCurvePrivateKey
    certificate_chain: tuple[x509.Certificate, ...] = ()

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.public_key)

    @property
    def public_key_pem(self) -> str:
        return _public_pem(self.public_key)

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey(name={self.name!r}, fingerprint={self.fingerprint!r})"


@dataclass(frozen=True)
class KeyRecord:
    """One public key in the keyring and its life cycle."""

    name: str
    fingerprint: str
    curve: str
    public_key: str
    status: Status = "active"
    created: str = ""
    rotated_at: str | None = None
    revoked_at: str | None = None
    revoked_reason: str | None = None
    key_file: str | None = None
    certificate_chain: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["certificate_chain"] = list(self.certificate_chain)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyRecord:
        try:
            return cls(
                name=str(d["name"]),
                fingerprint=str(d["fingerprint"]),
                curve=str(d["curve"]),
                public_key=str(d["public_key"]),
                status=d.get("status", "active"),
                created=str(d.get("created", "")),
                rotated_at=d.get("rotated_at"),
                revoked_at=d.get("revoked_at"),
                revoked_reason=d.get("revoked_reason"),
                key_file=d.get("key_file"),
                certificate_chain=tuple(d.get("certificate_chain", ())),
            )
        except (KeyError, TypeError) as e:
            raise KeyManagementError(f"Malformed keyring entry {d!r}: {e}.") from e

    def load_public_key(self) -> ec.EllipticCurvePublicKey:
        key = serialization.load_pem_public_key(self.public_key.encode("ascii"))
        return check_ec_key(key)


# --------------------------------------------------------------------------------------- key files


def generate_private_key(curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    """A fresh EC private key on ``curve`` ("P-256" or "P-384")."""
    if curve not in _CURVES:
        raise KeyManagementError(f"Curve must be one of {', '.join(_CURVES)}; got {curve!r}.")
    return ec.generate_private_key(_CURVES[curve])


def _b64e(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _b64d(s: object, what: str) -> bytes:
    if not isinstance(s, str):
        raise KeyManagementError(f"The key file's {what} is missing.")
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeyManagementError(f"The key file's {what} is not valid base64.") from e


def _aad(header: dict[str, Any]) -> bytes:
    # Everything but the ciphertext is bound to it, so editing the name or KDF parameters breaks decryption.
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def encrypt_private_key(
    private_key: ec.EllipticCurvePrivateKey, passphrase: str, *, name: str = "", scrypt_n: int = _SCRYPT_N
) -> bytes:
    """Serialize ``private_key`` as Bastion's encrypted key file (JSON, ``version`` 1).

    PKCS#8 DER, sealed with AES-256-GCM under a key derived from ``passphrase`` by scrypt.
    """
    if not passphrase:
        raise KeyManagementError(f"A passphrase is required to store a signing key; set {PASSPHRASE_ENV}.")
    check_ec_key(private_key.public_key())
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    header: dict[str, Any] = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "schema_version": 1,
        "name": name,
        "fingerprint": public_key_fingerprint(private_key.public_key()),
        "kdf": {"name": "scrypt", "salt": _b64e(salt), "n": scrypt_n, "r": _SCRYPT_R, "p": _SCRYPT_P},
        "cipher": {"name": "AES-256-GCM", "nonce": _b64e(nonce)},
    }
    kdf = Scrypt(salt=salt, length=32, n=scrypt_n, r=_SCRYPT_R, p=_SCRYPT_P)
    kek = kdf.derive(passphrase.encode("utf-8"))
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ct = AESGCM(kek).encrypt(nonce, der, _aad(header))
    return (json.dumps({**header, "ciphertext": _b64e(ct)}, indent=2) + "\n").encode("utf-8")


def decrypt_private_key(data: bytes, passphrase: str) -> ec.EllipticCurvePrivateKey:
    """Open a key file written by :func:`encrypt_private_key`."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KeyManagementError("The signing key file is not a Bastion key file (not JSON).") from e
    if not isinstance(doc, dict) or doc.get("format") != _FILE_FORMAT:
        raise KeyManagementError("The signing key file is not a Bastion signing key file.")
    if doc.get("version") != _FILE_VERSION:
        raise KeyManagementError(
            f"Signing key file version {doc.get('version')!r} is not supported (expected {_FILE_VERSION}); "
            "upgrade Bastion."
        )
    kdf = doc.get("kdf")
    cipher = doc.get("cipher")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt" or not isinstance(cipher, dict):
        raise KeyManagementError("The signing key file names an unsupported KDF or cipher.")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(v, int) for v in (n, r, p)) or not (2**10 <= int(n) <= 2**20):  # type: ignore[arg-type]
        raise KeyManagementError("The signing key file has out-of-range scrypt parameters.")
    salt = _b64d(kdf.get("salt"), "salt")
    nonce = _b64d(cipher.get("nonce"), "nonce")
    ct = _b64d(doc.get("ciphertext"), "ciphertext")
    header = {k: v for k, v in doc.items() if k != "ciphertext"}
    kek = Scrypt(salt=salt, length=32, n=int(n), r=int(r), p=int(p)).derive(  # type: ignore[arg-type]
        passphrase.encode("utf-8")
    )
    try:
        der = AESGCM(kek).decrypt(nonce, ct, _aad(header))
    except InvalidTag as e:
        raise KeyManagementError(
            "Cannot unlock the signing key: wrong passphrase, or the key file was altered."
        ) from e
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyManagementError("The signing key file does not hold an EC private key.")
    check_ec_key(key.public_key())
    return key


def _load_pem_private_key(data: bytes, passphrase: str | None, source: str) -> ec.EllipticCurvePrivateKey:
    if data.lstrip().startswith(b"{"):
        if not passphrase:
            raise KeyManagementError(f"The signing key from {source} is encrypted; set {PASSPHRASE_ENV}.")
        return decrypt_private_key(data, passphrase)
    try:
        # Only an encrypted PEM takes the passphrase; BASTION_KEY_PASSPHRASE may be set for the keyring.
        password = passphrase.encode() if passphrase and b"ENCRYPTED" in data else None
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as e:
        raise KeyManagementError(
            f"The signing key from {source} is passphrase-protected (or is not); check {PASSPHRASE_ENV}."
        ) from e
    except ValueError as e:
        raise KeyManagementError(
            f"The signing key from {source} is not a PEM private key, or the passphrase is wrong."
        ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyManagementError(
            f"The signing key from {source} is {type(key).__name__}; "
            "Bastion signs with EC keys (P-256/P-384)."
        )
    check_ec_key(key.public_key())
    return key


def _load_chain(path: str | os.PathLike[str]) -> tuple[x509.Certificate, ...]:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyManagementError(f"Cannot read the certificate chain {path}: {e.strerror}.") from e
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError as e:
        raise KeyManagementError(f"{path} holds no PEM certificates: {e}.") from e


# ------------------------------------------------------------------------------------------ keyring


def project_keyring(project: ProjectHandle) -> Keyring:
    """The keyring of ``project``: in its metadata database, private keys under :func:`signing_dir`."""
    return Keyring(signing_dir(project), getattr(project, "db", None), actor=str(getattr(project, "actor", "")))


def signing_dir(project: ProjectHandle) -> Path:
    """``<project home>/keys/signing``: encrypted private keys and ``keyring.json``."""
    return Path(project.settings.home_path) / "keys" / "signing"


class Keyring:
    """Every signing public key ever made, with its status.

    With a database (``db``, as for every project) the keyring is the shared document ``signing-keyring`` in
    the metadata database, so every folder and server using that database verifies with the same keys and sees
    a revocation at once; private keys stay in ``directory`` on the machine that made them. Without one (or
    before the first write), ``directory/keyring.json`` is read, as older Bastion versions wrote it.
    """

    FILE = "keyring.json"
    DOCUMENT = "signing-keyring"

    def __init__(self, directory: Path, db: Any | None = None, *, actor: str = "") -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILE
        self.db = db
        self.actor = actor

    def _from_doc(self, doc: Any, where: str) -> list[KeyRecord]:
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list) or doc.get("schema_version") != 1:
            raise KeyManagementError(f"{where} is not a Bastion signing keyring (schema_version 1).")
        return [KeyRecord.from_dict(k) for k in keys]

    def _file_records(self) -> list[KeyRecord]:
        if not self.path.is_file():
            return []
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise KeyManagementError(f"{self.path} is not valid JSON: {e}. Restore it from backup.") from e
        return self._from_doc(doc, str(self.path))

    def records(self, conn: Any | None = None) -> list[KeyRecord]:
        if self.db is None:
            return self._file_records()
        from bastion.store.shared import get_document

        if conn is None:
            with self.db.read() as c:
                got = get_document(c, self.DOCUMENT)
        else:
            got = get_document(conn, self.DOCUMENT)
        if got is None:
            return self._file_records()
        return self._from_doc(got[1], "the signing keyring in the database")

    def save(self, records: Sequence[KeyRecord], conn: Any | None = None) -> None:
        doc = {"schema_version": 1, "keys": [r.to_dict() for r in records]}
        if self.db is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
            return
        from bastion.store.shared import put_document

        if conn is None:
            with self.db.write() as c:
                put_document(c, self.DOCUMENT, doc, actor=self.actor)
        else:
            put_document(conn, self.DOCUMENT, doc, actor=self.actor)
        if self.path.is_file():  # the database now holds it: keep the old file only as a backup
            os.replace(self.path, self.path.with_name(self.FILE + ".imported"))

    def active(self, name: str | None = None, conn: Any | None = None) -> KeyRecord:
        """The active key called ``name``; without a name, the only active key."""
        recs = self.records(conn)
        if name is None:
            act = [r for r in recs if r.status == "active"]
            if len(act) == 1:
                return act[0]
            if not act:
                raise KeyManagementError(
                    "No active signing key. Create one with `bastion keys signing init NAME`."
                )
            names = ", ".join(sorted(r.name for r in act))
            raise KeyManagementError(f"Several active signing keys ({names}); choose one with --key NAME.")
        for r in recs:
            if r.name == name and r.status == "active":
                return r
        if any(r.name == name for r in recs):
            raise KeyManagementError(
                f"Signing key '{name}' has no active version (rotated or revoked); "
                f"run `bastion keys signing rotate {name}` to make a new one."
            )
        raise KeyManagementError(f"No signing key named '{name}'. See `bastion keys signing list`.")


@contextmanager
def _locked(project: ProjectHandle) -> Iterator[Any]:
    # The project transaction serializes writers, so two rotations cannot both read the old keyring.
    with project.transaction() as tx:
        yield tx


def _audit(project: ProjectHandle, tx: Any, action: str, subject: str, details: dict[str, Any]) -> None:
    # Project.record also advances the audit head file; plain audit.append is the documented minimum.
    record = getattr(project, "record", None)
    if callable(record):
        record(tx, action, subject, details)
    else:
        project.audit.append(tx, action=action, subject=subject, details=details)


def _write_key_file(directory: Path, name: str, key: ec.EllipticCurvePrivateKey, passphrase: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fp = public_key_fingerprint(key.public_key())
    path = directory / f"{name}-{fp.split(':')[1][:16]}.key"
    data = encrypt_private_key(key, passphrase, name=name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise KeyManagementError(
            f"Key name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit); "
            f"got {name!r}."
        )


def _curve_of(key: ec.EllipticCurvePrivateKey) -> str:
    return _CURVE_NAMES[key.curve.name]


def init_signing_key(
    project: ProjectHandle,
    name: str,
    *,
    passphrase: str,
    curve: str = "P-256",
    certificate_chain: str | os.PathLike[str] | None = None,
) -> KeyRecord:
    """Create a signing key called ``name``, store it encrypted and record its public key.

    ``certificate_chain`` (PEM, leaf first) attaches a certificate from the user's own CA.
    """
    _check_name(name)
    if not passphrase:
        raise KeyManagementError(f"A passphrase is required; set {PASSPHRASE_ENV} or answer the prompt.")
    key = generate_private_key(curve)
    chain = _load_chain(certificate_chain) if certificate_chain else ()
    if chain and chain[0].public_key() != key.public_key():
        raise KeyManagementError("A new key cannot use an existing certificate; the leaf is for another key.")
    return _add_key(project, name, key, passphrase, chain, action="keys.signing.init")


def _add_key(
    project: ProjectHandle,
    name: str,
    key: ec.EllipticCurvePrivateKey,
    passphrase: str,
    chain: tuple[x509.Certificate, ...],
    *,
    action: str,
    rotate_from: KeyRecord | None = None,
) -> KeyRecord:
    ring = project_keyring(project)
    with _locked(project) as tx:
        recs = ring.records(tx)
        if rotate_from is None and any(r.name == name for r in recs):
            raise KeyManagementError(
                f"A signing key named '{name}' exists; "
                f"use `bastion keys signing rotate {name}` to replace it."
            )
        path = _write_key_file(ring.directory, name, key, passphrase)
        rec = KeyRecord(
            name=name,
            fingerprint=public_key_fingerprint(key.public_key()),
            curve=_curve_of(key),
            public_key=_public_pem(key.public_key()),
            created=_now(),
            key_file=path.name,
            certificate_chain=tuple(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain),
        )
        if rotate_from is not None:
            old_fp = rotate_from.fingerprint
            recs = [
                replace(r, status="rotated", rotated_at=rec.created) if r.fingerprint == old_fp else r
                for r in recs
            ]
        ring.save([*recs, rec], tx)
        details: dict[str, Any] = {"fingerprint": rec.fingerprint, "curve": rec.curve}
        if rotate_from is not None:
            details["previous_fingerprint"] = rotate_from.fingerprint
        _audit(project, tx, action, f"signing-key:{name}", details)
    logger.info("signing key %s %s (%s)", name, action.rsplit(".", 1)[-1], rec.fingerprint)
    return rec


def list_signing_keys(project: ProjectHandle) -> list[KeyRecord]:
    """Every signing key of the project (active, rotated and revoked), oldest first."""
    return project_keyring(project).records()


def rotate_signing_key(project: ProjectHandle, name: str, *, passphrase: str, curve: str | None = None) -> KeyRecord:
    """Replace the active key ``name`` with a new one; the old key stays valid for old signatures."""
    if not passphrase:
        raise KeyManagementError(f"A passphrase is required; set {PASSPHRASE_ENV} or answer the prompt.")
    old = project_keyring(project).active(name)
    key = generate_private_key(curve or old.curve)
    return _add_key(project, name, key, passphrase, (), action="keys.signing.rotate", rotate_from=old)


def revoke_signing_key(project: ProjectHandle, name: str, *, reason: str, fingerprint: str | None = None) -> KeyRecord:
    """Revoke a key: signatures made with it stop verifying and its private key file is deleted.

    Without ``fingerprint`` the active key ``name`` is revoked; with it, that exact version.
    """
    if not reason.strip():
        raise KeyManagementError("Revoking a key needs a reason (--reason); it goes into the audit log.")
    ring = project_keyring(project)
    with _locked(project) as tx:
        recs = ring.records(tx)
        if fingerprint is None:
            target = ring.active(name, tx)
        else:
            found = [r for r in recs if r.name == name and r.fingerprint == fingerprint]
            if not found:
                raise KeyManagementError(f"No signing key '{name}' with fingerprint {fingerprint}.")
            target = found[0]
        if target.status == "revoked":
            raise KeyManagementError(f"Signing key '{name}' ({target.fingerprint}) is already revoked.")
        revoked = replace(target, status="revoked", revoked_at=_now(), revoked_reason=reason)
        ring.save([revoked if r.fingerprint == target.fingerprint else r for r in recs], tx)
        if target.key_file:
            (ring.directory / target.key_file).unlink(missing_ok=True)
        _audit(
            project, tx, "keys.signing.revoke", f"signing-key:{name}",
            {"fingerprint": target.fingerprint, "reason": reason},
        )
    logger.warning("signing key %s revoked (%s)", name, target.fingerprint)
    return revoked


def load_signing_key(
    project: ProjectHandle | None = None,
    name: str | None = None,
    *,
    passphrase: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    certificate_chain: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> SigningKey:
    """The private key to sign with.

    Resolution order: ``key_file`` argument, the ``BASTION_SIGNING_KEY`` variable (PEM text),
    ``BASTION_SIGNING_KEY_FILE``, then the project keyring (``name``, or its only active key).
    The passphrase comes from the argument or ``BASTION_KEY_PASSPHRASE``.
    """
    environ = os.environ if env is None else env
    passphrase = passphrase if passphrase is not None else environ.get(PASSPHRASE_ENV) or None
    chain = _load_chain(certificate_chain) if certificate_chain else ()
    key: ec.EllipticCurvePrivateKey
    if key_file is None and not environ.get(KEY_ENV) and environ.get(KEY_FILE_ENV):
        key_file = environ[KEY_FILE_ENV]
    if key_file is not None:
        try:
            data = Path(key_file).read_bytes()
        except OSError as e:
            raise KeyManagementError(f"Cannot read the signing key file {key_file}: {e.strerror}.") from e
        key = _load_pem_private_key(data, passphrase, str(key_file))
        key_name = name or Path(key_file).stem
    elif environ.get(KEY_ENV):
        key = _load_pem_private_key(environ[KEY_ENV].encode("utf-8"), passphrase, f"${KEY_ENV}")
        key_name = name or "env"
    else:
        if project is None:
            raise KeyManagementError(
                f"No signing key: pass a key file, set {KEY_ENV}, or run inside a project with a signing key."
            )
        ring = project_keyring(project)
        rec = ring.active(name)
        if not passphrase:
            raise KeyManagementError(f"Signing key '{rec.name}' is encrypted; set {PASSPHRASE_ENV}.")
        if not rec.key_file:
            raise KeyManagementError(f"Signing key '{rec.name}' has no private key file in this project.")
        try:
            data = (ring.directory / rec.key_file).read_bytes()
        except OSError as e:
            raise KeyManagementError(
                f"The private key file of '{rec.name}' is missing ({rec.key_file}): {e.strerror}."
            ) from e
        key = decrypt_private_key(data, passphrase)
        if public_key_fingerprint(key.public_key()) != rec.fingerprint:
            raise KeyManagementError(f"The key file of '{rec.name}' does not match the keyring fingerprint.")
        key_name = rec.name
        if not chain and rec.certificate_chain:
            chain = tuple(x509.load_pem_x509_certificate(c.encode("ascii")) for c in rec.certificate_chain)
    if chain and chain[0].public_key() != key.public_key():
        raise KeyManagementError("The signing certificate (first in the chain) is not for this signing key.")
    return SigningKey(name=key_name, private_key=key, certificate_chain=chain)
