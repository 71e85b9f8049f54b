"""``bastion audit verify``: the chain, its signed checkpoints, and the tables that cache it.

The alias table, the attachments and the version rows are caches of audited events; each row that no
audited event accounts for (or each audited event with no row) is named as a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bastion.audit.checkpoints import (
    CHECKPOINT_ACTION,
    CheckpointCheck,
    read_witness,
    verify_checkpoints,
    write_checkpoint,
)
from bastion.audit.log import AuditEntry, ChainReport
from bastion.store.schema import aliases, attachments, datasets, models

if TYPE_CHECKING:
    from pathlib import Path

    from bastion.protocols import ProjectHandle

__all__ = ["ALIAS_ACTIONS", "AuditReport", "CacheIndex", "verify_project"]

ALIAS_ACTIONS = ("model.promote", "model.promote.forced", "model.rollback")
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
                # documents stored with the version in the same transaction, named by this entry
                for key, doc_kind in _REGISTER_DOCS.items():
                    if isinstance(d.get(key), str):
                        self.attachments.setdefault((kind, name, version, doc_kind), set()).add(d[key])
                self.register_docs[(kind, name, version)] = {
                    v for k, v in d.items() if k != "digest" and isinstance(v, str) and v.startswith("sha256:")
                }
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

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.checkpoints.ok and not self.mismatches and not self.witness

    @property
    def problems(self) -> list[str]:
        out = [] if self.chain.ok else [f"chain broken at entry {self.chain.first_bad_seq}: {self.chain.problem}"]
        out += [f"checkpoint: {p}" for p in self.checkpoints.problems]
        out += [f"witness: {p}" for p in self.witness]
        out += [f"mismatch: {m}" for m in self.mismatches]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**self.chain.to_dict(), "ok": self.ok, "chain_ok": self.chain.ok,
                "checkpoints": self.checkpoints.to_dict(), "mismatches": list(self.mismatches),
                "witness": list(self.witness), "problems": self.problems}


def _cross_check(project: ProjectHandle, idx: CacheIndex) -> list[str]:
    out: list[str] = []
    with project.db.read() as conn:
        alias_rows = conn.execute(
            select(aliases.c.name, aliases.c.alias, aliases.c.version).where(aliases.c.kind == "model")
        ).all()
        model_rows = conn.execute(select(models.c.name, models.c.version, models.c.digest)).all()
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


def verify_project(project: ProjectHandle, *, witness: str | Path | None = None, seal: bool = False) -> AuditReport:
    """Verify the chain against its signed checkpoints (and an exported ``witness`` folder), then
    cross-check the alias table, attachments and version rows against it.

    ``seal``: when everything holds, sign the verified head with a checkpoint, so that deleting any of
    these entries later is found (entries after the newest checkpoint are otherwise unsealed).
    """
    idx = CacheIndex()
    # Checkpoint numbers recorded in the chain are known only after the walk; signatures first.
    cps = verify_checkpoints(project.settings)
    expected = dict(cps.expected)
    witness_problems: list[str] = []
    if witness is not None:
        from bastion.audit.checkpoints import audit_public_key, signature_ok

        pub = audit_public_key(project.settings)
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
    report = AuditReport(chain, cps, tuple(mismatches), tuple(witness_problems))
    if seal and report.ok:
        write_checkpoint(project)
    return report
