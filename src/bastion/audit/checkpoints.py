"""Signed checkpoints of the audit chain: the head (seq, hash, time) signed with the project's audit key.

Checkpoints are stored content-addressed in the artifact store (``<artifacts>/audit-checkpoints``), out of
reach of whoever can only write the database; each names the one before it, so a missing checkpoint, a
chain shorter than the newest checkpoint, or an entry rewritten under one are found by ``audit verify``.
The audit key (Ed25519, made by ``bastion keys init``) is separate from the model signing keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bastion.audit.log import AuditEntry, canonical, entry_hash, now_iso
from bastion.errors import BastionError, IntegrityError, KeyManagementError, StoreError
from bastion.store.blobs import BlobStore, open_blob_store
from bastion.store.schema import audit_log

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.protocols import ProjectHandle

__all__ = [
    "ANCHORED_ACTIONS",
    "CHECKPOINT_ACTION",
    "AuditKeyState",
    "Checkpoint",
    "CheckpointCheck",
    "after_commit",
    "anchor",
    "audit_key_paths",
    "audit_key_state",
    "audit_public_key",
    "checkpoint_store",
    "database_id",
    "export_checkpoints",
    "init_audit_key",
    "list_checkpoints",
    "verify_checkpoints",
    "write_checkpoint",
]

CHECKPOINT_ACTION = "audit.checkpoint"
KIND = "bastion.audit.checkpoint"
log = logging.getLogger("bastion.audit")
INTERVAL = 256  # entries: a checkpoint at least this often, besides every promote, rollback and gate run
KEY_INIT_ACTION = "keys.audit.init"
# entries a checkpoint is written (and vouches) for at once: what serving, signature trust and the CA list rely on
ANCHORED_ACTIONS = frozenset({"model.promote", "model.promote.forced", "model.rollback", "gate.run",
                              KEY_INIT_ACTION, "keys.signing.ca.add", "keys.signing.ca.remove",
                              "keys.signing.init", "keys.signing.rotate", "keys.signing.revoke",
                              "keys.api.create", "keys.api.import", "ui.user.add", "ui.user.import",
                              "ui.user.rehash"})
_KEY_FILE = "audit-ed25519.pem"
_PUB_FILE = "audit-ed25519.pub"


def database_id(settings: Settings) -> str:
    """Which database a chain lives in: the default SQLite file of the project, or the configured URL
    without its password. Checkpoints and the head file of another database are not this chain's."""
    if not settings.database_url:
        return "sqlite:default"
    try:
        url = make_url(settings.database_url).set(password=None)
        text = url.render_as_string(hide_password=False)
    except Exception:  # an unparsable URL fails elsewhere; still give it a stable id
        text = settings.database_url
    return "url:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def audit_key_paths(settings: Settings) -> tuple[Path, Path]:
    """``(private key, public key)`` beside the project's other keys."""
    d = settings.key_path.parent
    return d / _KEY_FILE, d / _PUB_FILE


def _fingerprint(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def init_audit_key(project: ProjectHandle, *, elsewhere_ok: bool = False) -> str:
    """Create the project's audit key if it has none; returns its fingerprint. Audited when created.

    When the chain already records an audit key that this folder does not hold, no new key is made: an error,
    or with ``elsewhere_ok`` (``bastion keys init`` in a second folder of a team) ``""`` and a warning.
    """
    priv_path, pub_path = audit_key_paths(project.settings)
    if priv_path.exists():
        pub = audit_public_key(project.settings)
        if pub is None:
            raise KeyManagementError(f"The audit key {priv_path} has no public key {pub_path} beside it.")
        return _fingerprint(pub)
    recorded = _recorded_keys(project)
    if recorded:
        # A key the chain already records is never silently replaced: a new key would re-sign whatever the
        # chain says now, which is exactly what deleting the key files and re-running this would buy an attacker.
        seq, fp = recorded[-1]
        if elsewhere_ok:
            log.warning("the audit key %s is held by another folder (entry %d); none made here: copy its public "
                        "key %s into this folder", fp[:23], seq, _PUB_FILE)
            return ""
        where = "has only the public key" if pub_path.exists() else "has no audit key files"
        raise KeyManagementError(
            f"The audit chain records the audit key {fp} (entry {seq}), but this folder {where} "
            f"({priv_path}). Restore the key files from the folder or backup that holds them; a new audit key is "
            "not made while the chain names one."
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        _write_private(priv_path, pem)
        _write_private(pub_path, pub_pem)
    except FileExistsError as e:
        raise KeyManagementError(f"An audit key file already exists at {e.filename}; not replaced.") from e
    fp = _fingerprint(key.public_key())
    project.audited(KEY_INIT_ACTION, fp, {"public_key": pub_pem.decode(), "key_file": str(priv_path)})
    return fp


def _private_key(settings: Settings) -> Ed25519PrivateKey | None:
    priv_path, _ = audit_key_paths(settings)
    try:
        data = priv_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise KeyManagementError(f"The audit key {priv_path} cannot be read: {e.strerror}.") from e
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyManagementError(f"The audit key {priv_path} is not an Ed25519 key.")
    return key


def audit_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """The project's audit public key, or None when ``keys init`` has not made one."""
    _, pub_path = audit_key_paths(settings)
    try:
        data = pub_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise KeyManagementError(f"The audit public key {pub_path} cannot be read: {e.strerror}.") from e
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise KeyManagementError(f"The audit public key {pub_path} is not an Ed25519 key.")
    return key


def _recorded_keys(project: ProjectHandle) -> tuple[tuple[int, str], ...]:
    """``(seq, fingerprint)`` of every audit key the chain records (``keys.audit.init``), oldest first."""
    return tuple((e.seq, e.subject) for e in project.audit.entries(action=KEY_INIT_ACTION, newest_first=False)
                 if e.action == KEY_INIT_ACTION)


@dataclass(frozen=True)
class AuditKeyState:
    """The audit public key of this folder, held to what the chain records.

    ``problem`` is set (and nothing may be proven) when the key file is missing although the chain records an
    audit key or checkpoints, when it is unreadable, or when it is not a key the chain records (replaced).
    """

    public_key: Ed25519PublicKey | None
    fingerprint: str | None
    recorded: tuple[tuple[int, str], ...]
    problem: str | None = None

    @property
    def since(self) -> int | None:
        """The entry that made the first audit key: entries before it could not be vouched for."""
        return self.recorded[0][0] if self.recorded else None


def audit_key_state(project: ProjectHandle) -> AuditKeyState:
    """This folder's audit public key and whether it may be used (see :class:`AuditKeyState`).

    A missing key file must not read as "this project has no audit key": that would turn every anchor check
    into a pass for whoever can delete one file. The chain (``keys.audit.init``, ``audit.checkpoint`` entries)
    says whether the project has one.
    """
    _, pub_path = audit_key_paths(project.settings)
    recorded = _recorded_keys(project)
    try:
        pub = audit_public_key(project.settings)
    except (KeyManagementError, ValueError) as e:
        return AuditKeyState(None, None, recorded, f"the audit public key {pub_path} cannot be used: {e}")
    if pub is None:
        problem = None
        if recorded:
            problem = (f"the audit public key {pub_path} is missing, but the audit chain records the audit key "
                       f"{recorded[-1][1][:23]}… (entry {recorded[-1][0]}): nothing can be proven until it is "
                       f"restored (copy keys/{_PUB_FILE} from the folder that holds the audit key)")
        else:
            cp = project.audit.newest((CHECKPOINT_ACTION,))
            if cp is not None:
                problem = (f"the audit public key {pub_path} is missing, but the audit chain records signed "
                           f"checkpoints (entry {cp.seq}): nothing can be proven until it is restored (copy "
                           f"keys/{_PUB_FILE} from the folder that holds the audit key)")
        return AuditKeyState(None, None, recorded, problem)
    fp = _fingerprint(pub)
    if recorded and fp not in {f for _, f in recorded}:
        seq, want = recorded[-1]
        return AuditKeyState(pub, fp, recorded,
                             f"the audit public key {pub_path} ({fp[:23]}…) is not the audit key the chain records "
                             f"({want[:23]}…, entry {seq}): the key file was replaced; restore the original")
    return AuditKeyState(pub, fp, recorded)


def checkpoint_store(settings: Settings) -> BlobStore:
    """The content-addressed store of checkpoints: ``<artifacts>/audit-checkpoints``."""
    return open_blob_store(settings.artifacts.rstrip("/") + "/audit-checkpoints",
                           storage_options=settings.storage_options)


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint as stored."""

    digest: str
    number: int
    seq: int
    hash: str
    time: str
    database: str
    prev: str | None
    key: str
    signature: str
    # entries this checkpoint's writer appended itself and vouches for (``[seq, hash]``): an entry some
    # later checkpoint merely covers may have been inserted by whoever can write the database
    vouches: tuple[tuple[int, str], ...] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schema_version": 1, "kind": KIND, "number": self.number, "seq": self.seq,
                                "hash": self.hash, "time": self.time, "database": self.database, "prev": self.prev,
                                "key": self.key}
        if self.vouches:
            body["vouches"] = [[s, h] for s, h in self.vouches]
        return body

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature, "digest": self.digest}


def _parse(digest: str, data: bytes) -> Checkpoint:
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("schema_version") != 1:
        raise IntegrityError(f"Blob {digest} in the checkpoint store is not an audit checkpoint.")
    try:
        vouches = tuple((int(s), str(h)) for s, h in doc.get("vouches") or [])
        return Checkpoint(digest, int(doc["number"]), int(doc["seq"]), str(doc["hash"]), str(doc["time"]),
                          str(doc["database"]), doc["prev"], str(doc["key"]), str(doc["signature"]), vouches)
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(f"Checkpoint {digest} lacks a field or has a wrong type: {e}.") from e


def signature_ok(cp: Checkpoint, pub: Ed25519PublicKey) -> bool:
    """Whether ``cp`` is signed by ``pub`` (and names that key)."""
    if cp.key != _fingerprint(pub):
        return False
    try:
        pub.verify(base64.b64decode(cp.signature, validate=True), canonical(cp.body()))
    except (InvalidSignature, ValueError):
        return False
    return True


def write_checkpoint(project: ProjectHandle, vouch: Sequence[AuditEntry] = ()) -> Checkpoint | None:
    """Sign the chain head now and store the checkpoint; None when the project has no audit key.

    ``vouch``: entries the caller appended itself; the checkpoint names them, so :func:`anchor` with
    ``vouched=True`` can tell them from entries someone inserted in the database before it was written.

    Runs in one serialized write transaction: the head cannot move while it is signed, and the
    ``audit.checkpoint`` entry naming the stored checkpoint is appended in the same transaction.
    """
    key = _private_key(project.settings)
    if key is None:
        return None
    db = database_id(project.settings)
    store = checkpoint_store(project.settings)
    with project.transaction() as conn:
        last = conn.execute(
            select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        if last is None:
            return None
        prev_row = conn.execute(
            select(audit_log.c.details_json).where(audit_log.c.action == CHECKPOINT_ACTION)
            .order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        prev = json.loads(prev_row[0]) if prev_row is not None else None
        number = int(prev["number"]) + 1 if prev is not None else 1
        body = {"schema_version": 1, "kind": KIND, "number": number, "seq": int(last[0]), "hash": str(last[1]),
                "time": now_iso(), "database": db, "prev": prev.get("digest") if prev is not None else None,
                "key": _fingerprint(key.public_key())}
        if vouch:
            body["vouches"] = [[int(e.seq), str(e.hash)] for e in vouch]
        sig = base64.b64encode(key.sign(canonical(body))).decode()
        data = canonical({**body, "signature": sig})
        digest = store.put_bytes(data)
        project.record(conn, CHECKPOINT_ACTION, f"audit:{number}",
                       {"number": number, "seq": body["seq"], "hash": body["hash"], "digest": digest})
    return _parse(digest, data)


def after_commit(project: ProjectHandle, entries: list[AuditEntry]) -> None:
    """Checkpoint after every promote, rollback and gate run, and when a transaction's entries crossed a
    multiple of :data:`INTERVAL` (cheap otherwise: no key read, no query)."""
    if not entries or any(e.action == CHECKPOINT_ACTION for e in entries):
        return
    first, last = entries[0].seq, entries[-1].seq
    if not (last // INTERVAL > (first - 1) // INTERVAL or any(e.action in ANCHORED_ACTIONS for e in entries)):
        return
    try:
        write_checkpoint(project, vouch=[e for e in entries if e.action in ANCHORED_ACTIONS])
    except (BastionError, OSError) as e:  # the next one covers these entries too; verify reports gaps
        log.warning("audit checkpoint failed: %s", type(e).__name__)


def anchor(project: ProjectHandle, entry: AuditEntry, *, vouched: bool = False) -> tuple[bool, str]:
    """Is ``entry`` covered by a signed checkpoint (the first one at or after it, linked back to it)?

    ``vouched``: for entries that grant trust (an allowance, a CA), covering is not enough, since any later
    checkpoint covers an entry inserted in the database behind Bastion's back: a checkpoint must also name it
    among the entries its writer appended itself.

    Entries written before the project's first audit key (``keys.audit.init``) could not be vouched for:
    for them covering is enough (nobody can insert an entry before that one without breaking a checkpoint).

    Without an audit key the project has no checkpoints: ``(True, ...)`` saying so (nothing to prove). A key
    file that is missing while the chain records a key (or checkpoints), or that the chain does not record,
    is ``(False, ...)``: deleting or replacing one file must not turn the check off.
    """
    state = audit_key_state(project)
    if state.problem is not None:
        return False, state.problem
    pub = state.public_key
    if pub is None:
        return True, "no audit key (run `bastion keys init`): the chain is not anchored by checkpoints"
    if vouched and state.since is not None and entry.seq < state.since:
        vouched = False
    with project.db.read() as conn:
        rows = conn.execute(
            select(audit_log.c.seq, audit_log.c.details_json).where(
                audit_log.c.action == CHECKPOINT_ACTION, audit_log.c.seq > entry.seq
            ).order_by(audit_log.c.seq).limit(8)
        ).all()
    store = checkpoint_store(project.settings)
    for _, details_json in rows:
        rec = json.loads(details_json)
        if int(rec.get("seq", -1)) < entry.seq:
            continue
        digest = str(rec.get("digest"))
        try:
            cp = _parse(digest, store.get_bytes(digest, what="audit checkpoint"))
        except (BastionError, ValueError) as e:
            return False, f"checkpoint {rec.get('number')} covering entry {entry.seq} is missing or altered: {e}"
        if not signature_ok(cp, pub):
            return False, f"checkpoint {cp.number} covering entry {entry.seq} does not verify with the audit key"
        chain = project.audit.range(entry.seq, cp.seq)
        if not chain or chain[0].hash != entry.hash or len(chain) != cp.seq - entry.seq + 1:
            return False, f"entries {entry.seq}..{cp.seq} under checkpoint {cp.number} are incomplete"
        for i, link in enumerate(chain):
            if entry_hash(link.seq, link.ts, link.actor, link.action, link.subject, canonical(link.details).decode(),
                          link.prev_hash) != link.hash or (i and link.prev_hash != chain[i - 1].hash):
                return False, f"entry {link.seq} under checkpoint {cp.number} was altered"
        if chain[-1].hash != cp.hash:
            return False, f"entry {cp.seq} differs from what checkpoint {cp.number} signed"
        if vouched and (entry.seq, entry.hash) not in cp.vouches:
            continue
        return True, f"entry {entry.seq} is covered by signed checkpoint {cp.number} (entry {cp.seq})"
    if vouched:
        return False, (f"no signed checkpoint vouches for entry {entry.seq} ({entry.action}): it was not written "
                       "by Bastion with the audit key, or predates vouching; redo the action")
    return False, (f"no signed checkpoint covers entry {entry.seq} ({entry.action}); run `bastion audit "
                   "checkpoint` if it was written before the audit key existed")


def list_checkpoints(settings: Settings) -> tuple[list[Checkpoint], list[str]]:
    """Every readable checkpoint of this project's database, and problems with the others."""
    store = checkpoint_store(settings)
    db = database_id(settings)
    out: list[Checkpoint] = []
    problems: list[str] = []
    try:
        digests = list(store.iter_digests())
    except (OSError, StoreError) as e:
        return [], [f"the checkpoint store cannot be listed: {e}"]
    for d in digests:
        try:
            cp = _parse(d, store.get_bytes(d, what="audit checkpoint"))
        except (BastionError, ValueError) as e:
            problems.append(f"checkpoint blob {d} is unreadable or altered: {e}")
            continue
        if cp.database == db:
            out.append(cp)
    out.sort(key=lambda c: (c.number, c.seq))
    return out, problems


@dataclass(frozen=True)
class CheckpointCheck:
    """What the checkpoints say about the chain: ``problems`` empty when every one holds."""

    checkpoints: int
    newest_seq: int
    key: str | None
    problems: tuple[str, ...]
    expected: dict[int, tuple[str, int]]  # seq -> (hash, checkpoint number) the chain must have
    vouched: frozenset[tuple[int, str]] = frozenset()  # (seq, hash) of entries some good checkpoint vouches for

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoints": self.checkpoints, "newest_seq": self.newest_seq, "key": self.key,
                "ok": self.ok, "problems": list(self.problems)}


def verify_checkpoints(settings: Settings, *, recorded: Iterable[dict[str, Any]] = ()) -> CheckpointCheck:
    """Check every checkpoint's signature and the sequence 1..N; ``recorded``: the chain's
    ``audit.checkpoint`` entry details, each of which must name a stored checkpoint."""
    pub = audit_public_key(settings)
    cps, problems = list_checkpoints(settings)
    if pub is None:
        if cps:
            problems.append(f"{len(cps)} checkpoint(s) exist but the audit public key is missing "
                            f"({audit_key_paths(settings)[1]}); restore it to verify them.")
        return CheckpointCheck(len(cps), 0, None, tuple(problems), {})
    fp = _fingerprint(pub)
    good: list[Checkpoint] = []
    for cp in cps:
        if signature_ok(cp, pub):
            good.append(cp)
        else:
            problems.append(f"checkpoint {cp.number} ({cp.digest}) does not verify with the audit key {fp[:23]}….")
    by_number: dict[int, Checkpoint] = {}
    for cp in good:
        other = by_number.get(cp.number)
        if other is not None and other.digest != cp.digest:
            problems.append(f"two different checkpoints are numbered {cp.number} (the chain was forked or rewritten).")
        by_number[cp.number] = cp
    if by_number:
        top = max(by_number)
        for n in range(1, top + 1):
            cp_n = by_number.get(n)
            if cp_n is None:
                problems.append(f"checkpoint {n} of {top} is missing from the checkpoint store.")
            elif n > 1 and (prev := by_number.get(n - 1)) is not None and cp_n.prev != prev.digest:
                problems.append(f"checkpoint {n} does not name checkpoint {n - 1} as its predecessor.")
    stored = {cp.digest for cp in cps}
    for rec in recorded:
        d = str(rec.get("digest"))
        if d not in stored:
            problems.append(f"checkpoint {rec.get('number')} recorded in the chain ({d}) is missing from the "
                            "checkpoint store.")
    expected = {cp.seq: (cp.hash, cp.number) for cp in good}
    newest = max((cp.seq for cp in good), default=0)
    vouched = frozenset(v for cp in good for v in cp.vouches)
    return CheckpointCheck(len(good), newest, fp, tuple(problems), expected, vouched)


def newest_checkpoint(settings: Settings) -> Checkpoint | None:
    """The newest checkpoint of this database whose signature holds (None without key or checkpoints)."""
    pub = audit_public_key(settings)
    if pub is None:
        return None
    cps, _ = list_checkpoints(settings)
    for cp in sorted(cps, key=lambda c: c.number, reverse=True):
        if signature_ok(cp, pub):
            return cp
    return None


def export_checkpoints(project: ProjectHandle, dest: str | Path) -> dict[str, Any]:
    """Write a fresh checkpoint, then copy every checkpoint and the audit public key to ``dest``
    (a folder, e.g. in a git repository, or an fsspec URL such as an object-locked bucket)."""
    fresh = write_checkpoint(project)
    if fresh is None:
        raise KeyManagementError("The project has no audit key; run `bastion keys init` first.")
    cps, _ = list_checkpoints(project.settings)
    _, pub_path = audit_key_paths(project.settings)
    files = {f"checkpoint-{cp.number:08d}.json": canonical({**cp.body(), "signature": cp.signature}) for cp in cps}
    files["audit-key.pub"] = pub_path.read_bytes()
    text = str(dest)
    if "://" in text and not text.startswith("file://"):
        import fsspec

        fs, base = fsspec.core.url_to_fs(text, **project.settings.storage_options)
        for name, data in files.items():
            with fs.open(f"{base.rstrip('/')}/{name}", "wb") as f:
                f.write(data)
    else:
        d = Path(text.removeprefix("file://"))
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, data in files.items():
            tmp = d / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, d / name)
    project.audited("audit.checkpoint.export", text, {"number": fresh.number, "seq": fresh.seq,
                                                       "files": len(files)})
    return {"dest": text, "checkpoints": len(cps), "newest": fresh.to_dict()}


def read_witness(path: str | Path) -> list[Checkpoint]:
    """Checkpoints exported to a local witness folder (for ``audit verify --witness``)."""
    out = []
    for f in sorted(Path(path).glob("checkpoint-*.json")):
        data = f.read_bytes()
        out.append(_parse("sha256:" + hashlib.sha256(data).hexdigest(), data))
    return out

