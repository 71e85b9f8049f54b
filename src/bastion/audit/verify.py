"""``bastion audit verify``: the chain, its signed checkpoints, and the tables that cache it.

The alias table, the attachments and the version rows are caches of audited events; each row that no
audited event accounts for (or each audited event with no row) is named as a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bastion.audit.checkpoints import (
    ANCHORED_ACTIONS,
    CHECKPOINT_ACTION,
    CheckpointCheck,
    audit_key_state,
    read_witness,
    verify_checkpoints,
    write_checkpoint,
)
from bastion.audit.log import AuditEntry, ChainReport
from bastion.errors import ConfigError
from bastion.store.schema import aliases, attachments, audit_log, datasets, models

if TYPE_CHECKING:
    from pathlib import Path

    from bastion.protocols import ProjectHandle

__all__ = ["ALIAS_ACTIONS", "AuditReport", "CacheIndex", "parse_expected_head", "reset_head", "verify_project"]

ALIAS_ACTIONS = ("model.promote", "model.promote.forced", "model.rollback")
# entries naming a project folder (subject: its root) that keeps an audit head file
HEAD_RESET_ACTION = "audit.head.reset"
HEAD_ACTIONS = ("project.init", "project.folder", HEAD_RESET_ACTION)
_HASH = re.compile(r"[0-9a-fA-F]{64}")
# register entries name the documents stored with the version without an attach entry of their own
_REGISTER_DOCS = {"scan_report": "scan", "flavor_document": "flavor"}


@dataclass
class CacheIndex:
    """What the chain says the tables should hold, gathered in one walk."""

    aliases: dict[tuple[str, str], tuple[int, int, str | None]] = field(default_factory=dict)
    versions: dict[tuple[str, str, int], str] = field(default_factory=dict)
    attachments: dict[tuple[str, str, int, str], set[str]] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    register_docs: dict[tuple[str, str, int], set[str]] = field(default_factory=dict)
    head_folders: dict[str, int] = field(default_factory=dict)
    lineage: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # model version -> audited datasets
    deleted: dict[tuple[str, str, int], int] = field(default_factory=dict)  # version -> its audited delete entry
    anchored: list[tuple[int, str, str, str]] = field(default_factory=list)  # (seq, hash, action, subject)

    def visit(self, e: AuditEntry) -> None:
        d = e.details
        action = e.action
        if action in ALIAS_ACTIONS:
            name, version = _split(e.subject)
            alias = d.get("alias")
            if name is not None and version is not None and isinstance(alias, str):
                digest = d.get("digest")
                self.aliases[(name, alias)] = (e.seq, version, digest if isinstance(digest, str) else None)
        elif action in ("model.register", "dataset.register"):
            name, version = _split(e.subject)
            kind = action.split(".", 1)[0]
            if name is not None and version is not None and isinstance(d.get("digest"), str):
                self.versions[(kind, name, version)] = d["digest"]
                if kind == "model" and isinstance(d.get("datasets"), list):
                    self.lineage[(name, version)] = [str(x) for x in d["datasets"]]
                # documents stored with the version in the same transaction, named by this entry
                for key, doc_kind in _REGISTER_DOCS.items():
                    if isinstance(d.get(key), str):
                        self.attachments.setdefault((kind, name, version, doc_kind), set()).add(d[key])
                self.register_docs[(kind, name, version)] = {
                    v for k, v in d.items() if k != "digest" and isinstance(v, str) and v.startswith("sha256:")
                }
        elif action in ("model.delete", "dataset.delete"):
            name, version = _split(e.subject)
            if name is not None and version is not None:
                self.deleted[(action.split(".", 1)[0], name, version)] = e.seq
        elif action == "model.rescan":  # a re-scan stores its report under this one audited entry
            name, version = _split(e.subject)
            if name is not None and version is not None and isinstance(d.get("report"), str):
                self.attachments.setdefault(("model", name, version, "scan"), set()).add(d["report"])
        elif ".attach." in action:
            kind, _, doc_kind = action.partition(".attach.")
            name, version = _split(e.subject)
            if name is not None and version is not None and isinstance(d.get("digest"), str):
                self.attachments.setdefault((kind, name, version, doc_kind), set()).add(d["digest"])
        elif action == CHECKPOINT_ACTION:
            self.checkpoints.append(d)
        if action in ANCHORED_ACTIONS:
            self.anchored.append((e.seq, e.hash, action, e.subject))
        if action in HEAD_ACTIONS:
            # the folders that keep a head file (subject: the folder), from the newest such entry on
            self.head_folders[e.subject] = e.seq


def _witness_key(witness: str | Path) -> str | None:
    from pathlib import Path as _Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = _Path(witness) / "audit-key.pub"
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(key, Ed25519PublicKey):
        return None
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _split(subject: str) -> tuple[str | None, int | None]:
    name, sep, ver = subject.rpartition(":")
    if not sep or not ver.isdigit():
        return None, None
    return name, int(ver)


@dataclass(frozen=True)
class AuditReport:
    """The chain report, the checkpoint check and each mismatch between the tables and the chain."""

    chain: ChainReport
    checkpoints: CheckpointCheck
    mismatches: tuple[str, ...]
    witness: tuple[str, ...] = ()
    anchors: tuple[str, ...] = ()  # the audit key file, the head file, --expect-head
    notes: tuple[str, ...] = ()  # worth knowing, not a failure (the audit key changed, with an audited entry)

    @property
    def ok(self) -> bool:
        return (self.chain.ok and self.checkpoints.ok and not self.mismatches and not self.witness
                and not self.anchors)

    @property
    def problems(self) -> list[str]:
        out = [] if self.chain.ok else [f"chain broken at entry {self.chain.first_bad_seq}: {self.chain.problem}"]
        out += [f"anchor: {p}" for p in self.anchors]
        out += [f"checkpoint: {p}" for p in self.checkpoints.problems]
        out += [f"witness: {p}" for p in self.witness]
        out += [f"mismatch: {m}" for m in self.mismatches]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**self.chain.to_dict(), "ok": self.ok, "chain_ok": self.chain.ok,
                "checkpoints": self.checkpoints.to_dict(), "mismatches": list(self.mismatches),
                "witness": list(self.witness), "anchors": list(self.anchors), "notes": list(self.notes),
                "problems": self.problems}


def _cross_check(project: ProjectHandle, idx: CacheIndex) -> list[str]:
    out: list[str] = []
    with project.db.read() as conn:
        alias_rows = conn.execute(
            select(aliases.c.name, aliases.c.alias, aliases.c.version).where(aliases.c.kind == "model")
        ).all()
        model_rows = conn.execute(select(models.c.name, models.c.version, models.c.digest)).all()
        model_extra = conn.execute(select(models.c.name, models.c.version, models.c.datasets_json,
                                          models.c.deleted_at)).all()
        dataset_deleted = conn.execute(select(datasets.c.name, datasets.c.version, datasets.c.deleted_at)).all()
        dataset_rows = conn.execute(select(datasets.c.name, datasets.c.version, datasets.c.digest)).all()
        att_rows = conn.execute(
            select(attachments.c.subject_kind, attachments.c.name, attachments.c.version, attachments.c.doc_kind,
                   attachments.c.digest)
        ).all()
    rows: dict[tuple[str, str, int], str] = {}
    for kind, table_rows in (("model", model_rows), ("dataset", dataset_rows)):
        for name, version, digest in table_rows:
            rows[(kind, name, int(version))] = str(digest)
    for key, digest in sorted(rows.items()):
        audited = idx.versions.get(key)
        if audited is None:
            out.append(f"{key[0]} version {key[1]}:{key[2]} is in the table but was never registered in the chain.")
        elif audited != digest:
            out.append(f"{key[0]} version {key[1]}:{key[2]} has digest {digest} in the table but {audited} in "
                       "the chain (the version row was edited).")
    for name, version, datasets_json, _ in model_extra:
        audited_lineage = idx.lineage.get((str(name), int(version)))
        try:
            in_row = [str(x) for x in json.loads(datasets_json or "[]")]
        except ValueError:
            in_row = ["<unreadable>"]
        if audited_lineage is not None and in_row != audited_lineage:
            out.append(f"model version {name}:{version} has lineage {in_row} in the table but {audited_lineage} in "
                       "the chain (the version row was edited; a drift monitor would compare with the wrong data).")
    live: list[tuple[str, Any, Any, Any]] = [("model", n, v, d) for n, v, _, d in model_extra]
    live += [("dataset", n, v, d) for n, v, d in dataset_deleted]
    for kind, name, version, deleted_at in live:
        seq = idx.deleted.get((kind, str(name), int(version)))
        if seq is not None and deleted_at is None:
            out.append(f"{kind} version {name}:{version} was deleted by audited entry {seq}, but its row says it "
                       "is live (the row was edited).")
    for key in sorted(set(idx.versions) - set(rows)):
        out.append(f"{key[0]} version {key[1]}:{key[2]} was registered in the chain but its row is gone.")
    table_aliases = {(str(n), str(a)): int(v) for n, a, v in alias_rows}
    for (name, alias), version in sorted(table_aliases.items()):
        ev = idx.aliases.get((name, alias))
        if ev is None:
            out.append(f"alias {name}@{alias} points at version {version} in the table, but no audited promote "
                       "or rollback ever set it.")
        elif ev[1] != version:
            out.append(f"alias {name}@{alias} points at version {version} in the table, but the newest audited "
                       f"promote/rollback (entry {ev[0]}) set it to version {ev[1]}.")
        elif ev[2] is not None and rows.get(("model", name, version)) not in (None, ev[2]):
            out.append(f"alias {name}@{alias}: version {version} has digest {rows.get(('model', name, version))}, "
                       f"but entry {ev[0]} promoted digest {ev[2]}.")
    for name, alias in sorted(set(idx.aliases) - set(table_aliases)):
        out.append(f"alias {name}@{alias} was set by audited entry {idx.aliases[(name, alias)][0]} but is missing "
                   "from the alias table.")
    stored: dict[tuple[str, str, int, str], set[str]] = {}
    for sk, name, version, kind, digest in att_rows:
        stored.setdefault((str(sk), str(name), int(version), str(kind)), set()).add(str(digest))
    for akey, digests in sorted(stored.items()):
        named = idx.attachments.get(akey, set()) | idx.register_docs.get(akey[:3], set())
        for d in sorted(digests - named):
            out.append(f"{akey[3]} attachment {d} of {akey[0]} {akey[1]}:{akey[2]} is in the table but was never "
                       "audited.")
    for akey, digests in sorted(idx.attachments.items()):
        for d in sorted(digests - stored.get(akey, set())):
            out.append(f"{akey[3]} attachment {d} of {akey[0]} {akey[1]}:{akey[2]} was audited but its row is "
                       "gone (deleted).")
    return out


def parse_expected_head(text: str) -> tuple[int | None, str]:
    """``SEQ:HASH`` or ``HASH`` (64 hex digits, as ``audit verify`` prints the head) for ``--expect-head``."""
    seq_text, sep, digest = text.strip().rpartition(":")
    if not sep:
        seq_text, digest = "", text.strip()
    if not _HASH.fullmatch(digest) or (sep and not seq_text.isdigit()):
        raise ConfigError(f"--expect-head must be SEQ:HASH or HASH (64 hex digits, as `bastion audit verify --json` "
                          f"prints 'entries' and 'head_hash'); got {text!r}.")
    return (int(seq_text) if sep else None), digest.lower()


def _expected_head(project: ProjectHandle, want: tuple[int | None, str]) -> list[str]:
    seq, digest = want
    with project.db.read() as conn:
        q = select(audit_log.c.seq, audit_log.c.hash)
        q = q.where(audit_log.c.seq == seq) if seq is not None else q.where(audit_log.c.hash == digest)
        row = conn.execute(q.limit(1)).first()
    shown = f"{seq}:{digest[:16]}…" if seq is not None else f"{digest[:16]}…"
    if row is None:
        return [f"the expected head {shown} is not in the chain (entries were deleted, or the database was "
                "restored from an older snapshot)."]
    if row[1] != digest:
        return [f"entry {row[0]} has hash {str(row[1])[:16]}…, not the expected head {shown} (the chain was "
                "rewritten)."]
    return []


def _head_file(project: ProjectHandle, idx: CacheIndex) -> list[str]:
    """This folder's head file is missing, emptied, or was made again after the chain registered the folder."""
    audit = project.audit
    head_path = getattr(audit, "head_path", None)
    registered = idx.head_folders.get(str(project.root))
    if head_path is None or registered is None:
        return []
    head = audit.read_head()
    fix = ("Check the chain against a witness (--witness) or a head you noted (--expect-head), then run "
           "`bastion audit verify --reset-head --reason \"…\"` (audited) to accept the head file as it is now.")
    if head is None:
        return [f"the audit head file {head_path} is missing or empty, but entry {registered} records that this "
                "folder keeps one: it was deleted, so entries after the newest checkpoint may have been deleted "
                f"with it. {fix}"]
    since = int(head.get("since", 0))
    if since > registered:
        return [f"the audit head file {head_path} starts at entry {since}, but entry {registered} records that this "
                "folder keeps one from then on: it was deleted and made again by a later write, so entries "
                f"before {since} may have been deleted with it. {fix}"]
    return []


def _unvouched(idx: CacheIndex, cps: CheckpointCheck, since: int) -> list[str]:
    """Entries that grant trust (promote, rollback, gate run, key and CA changes) written since the project has
    an audit key that no signed checkpoint vouches for: appended in the database by someone without the key
    (a later checkpoint covers them, but only the writer's own checkpoint vouches)."""
    out = []
    for seq, digest, action, subject in idx.anchored:
        if seq >= since and (seq, digest) not in cps.vouched:
            out.append(f"entry {seq} ({action} {subject}) is not vouched for by any signed checkpoint: it was not "
                       "written by Bastion with the audit key (appended in the database?); nothing relies on it.")
    return out


def reset_head(project: ProjectHandle, *, reason: str) -> AuditEntry:
    """Start a new head file after an operator checked the chain (audited as ``audit.head.reset``)."""
    if not reason.strip():
        raise ConfigError("Resetting the audit head file needs a reason (--reason); it goes into the audit log.")
    return project.audited(HEAD_RESET_ACTION, str(project.root), {"reason": reason})


def verify_project(project: ProjectHandle, *, witness: str | Path | None = None, seal: bool = False,
                   expect_head: str | None = None) -> AuditReport:
    """Verify the chain against its signed checkpoints (and an exported ``witness`` folder), then
    cross-check the alias table, attachments and version rows against it.

    ``seal``: when everything holds, sign the verified head with a checkpoint, so that deleting any of
    these entries later is found (entries after the newest checkpoint are otherwise unsealed).
    ``expect_head``: ``SEQ:HASH`` (or ``HASH``) noted earlier, e.g. from a ticket or another machine: the
    chain must still hold it (a restored older database snapshot or a deleted tail does not).
    """
    want = parse_expected_head(expect_head) if expect_head is not None else None
    idx = CacheIndex()
    # Checkpoint numbers recorded in the chain are known only after the walk; signatures first.
    cps = verify_checkpoints(project.settings)
    expected = dict(cps.expected)
    witness_problems: list[str] = []
    key = audit_key_state(project)
    anchors: list[str] = [key.problem] if key.problem else []
    notes: list[str] = []
    if len(key.recorded) > 1:
        notes.append("the audit key changed: the chain records " + ", ".join(
            f"{fp[:23]}… (entry {seq})" for seq, fp in key.recorded) + "; checkpoints before the newest key "
            "verify only with the key they name.")
    if witness is not None:
        from bastion.audit.checkpoints import signature_ok

        pub = key.public_key
        witness_key = _witness_key(witness)
        if witness_key is not None and key.fingerprint is not None and witness_key != key.fingerprint:
            witness_problems.append(
                f"the witness holds the audit key {witness_key[:23]}…, but this folder's audit key is "
                f"{key.fingerprint[:23]}…: the audit key was replaced (and the chain re-signed?). Trust the "
                "witness; restore the original key and the database from a backup.")
        for cp in read_witness(witness):
            if pub is None or not signature_ok(cp, pub):
                witness_problems.append(f"witness checkpoint {cp.number} does not verify with the audit key.")
                continue
            known = expected.get(cp.seq)
            if known is not None and known[0] != cp.hash:
                witness_problems.append(f"witness checkpoint {cp.number} disagrees with the store at entry {cp.seq}.")
            expected.setdefault(cp.seq, (cp.hash, cp.number))
    chain = project.audit.verify(expected=expected, visit=idx.visit)
    cps = verify_checkpoints(project.settings, recorded=idx.checkpoints)
    mismatches = _cross_check(project, idx) if chain.ok else []
    anchors += _head_file(project, idx)
    if chain.ok and key.public_key is not None and key.since is not None:
        anchors += _unvouched(idx, cps, key.since)
    if want is not None:
        anchors += _expected_head(project, want)
    report = AuditReport(chain, cps, tuple(mismatches), tuple(witness_problems), tuple(anchors), tuple(notes))
    if seal and report.ok:
        write_checkpoint(project)
    return report
