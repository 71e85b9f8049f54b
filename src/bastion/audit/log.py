"""The audit log: each entry hashes the previous one, so an edited, deleted, inserted or
reordered entry breaks the chain at a place ``verify`` names.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, literal, select

from bastion.audit.refusals import RefusalAggregator
from bastion.store.db import Database, commit_with
from bastion.store.schema import audit_log

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "ChainReport", "entry_hash"]

GENESIS = "0" * 64

# Built once: constructing statements per call costs more than running them on SQLite.
_LAST_ENTRY = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
_INSERT_ENTRY = audit_log.insert()


def _successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` in code-point order (SQLite's
    binary order of UTF-8); None when there is none (the prefix ends in U+10FFFF)."""
    last = ord(prefix[-1])
    if last == 0x10FFFF:
        return None
    nxt = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1  # surrogates cannot be stored: skip them
    return prefix[:-1] + chr(nxt)


def now_iso() -> str:
    """UTC time as an ISO-8601 string with microseconds (the stored, hashed form)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def canonical(obj: Any) -> bytes:
    """Canonical JSON encoding: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def entry_hash(seq: int, ts: str, actor: str, action: str, subject: str, details_json: str, prev: str) -> str:
    """SHA-256 over the canonical encoding of one entry and its predecessor's hash."""
    body = {
        "seq": seq,
        "ts": ts,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details_json,
        "prev": prev,
    }
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry as stored."""

    seq: int
    ts: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying the chain: ``ok`` or the first bad entry and why."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""
    head_hash: str = GENESIS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    """Appends and verifies entries; appends happen inside the caller's write transaction."""

    def __init__(self, db: Database, actor: str, *, head_path: Path | None = None, database: str = "") -> None:
        self.db = db
        self.actor = actor
        self.head_path = head_path
        # Which database this chain lives in: head records of another database (after switching
        # database_url) are not this chain's and must not raise a false alarm.
        self.database = database
        self.refusals = RefusalAggregator()
        self._since: int | None = None

    _HEAD_TAIL = 4096
    _HEAD_COMPACT = 256 * 1024

    def write_head(self, entry: AuditEntry) -> None:
        """Record the newest committed entry outside the database, so deleting the tail is detected.

        Called after commit. Each commit appends one short line (O_APPEND: cheap, and concurrent writers
        cannot interleave within a line); the head is the highest sequence number on record, so the file
        may lag the database but never lead it. The log is compacted to its last line when it grows.
        """
        if self.head_path is None:
            return
        fd = os.open(self.head_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size == 0:
                # A new (or emptied) file starts at this entry: one deleted and made again by the next write
                # starts later than the chain's record of this folder says (``audit verify`` names it).
                self._since = entry.seq
            elif self._since is None:
                known = self.read_head()
                self._since = int(known.get("since", 0)) if known and int(known.get("seq", -1)) >= 0 else 0
            rec: dict[str, Any] = {"seq": entry.seq, "hash": entry.hash, "since": self._since}
            if self.database:
                rec["db"] = self.database
            os.write(fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > self._HEAD_COMPACT:
            self._compact_head()

    def _compact_head(self) -> None:
        assert self.head_path is not None
        head = self.read_head()
        if not head or int(head.get("seq", -1)) < 0:
            return
        # A name unique per call: threads of one process (the dashboard's thread pool) compact concurrently,
        # and a shared per-process name let one thread rename the other's file away (a 500).
        fd, tmp = tempfile.mkstemp(dir=self.head_path.parent, prefix=self.head_path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp makes 0600: the head log's mode
            f.write(json.dumps(head, separators=(",", ":")) + "\n")
        os.replace(tmp, self.head_path)

    def read_head(self) -> dict[str, Any] | None:
        """The highest ``{"seq", "hash"}`` recorded in the head log, or None when there is none."""
        if self.head_path is None or not self.head_path.is_file():
            return None
        try:
            with open(self.head_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - self._HEAD_TAIL))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return {"seq": -1, "hash": "unreadable"}
        best: dict[str, Any] | None = None
        foreign = False
        for raw in tail.splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a partial first line of the tail window, or a torn last write
            if isinstance(rec, dict) and isinstance(rec.get("seq"), int) and isinstance(rec.get("hash"), str):
                if rec.get("db", "sqlite:default") != (self.database or "sqlite:default"):
                    foreign = True
                    continue  # written while the project used another database
                if best is None or rec["seq"] > best["seq"]:
                    best = rec
        if best is None and size > 0 and not foreign:
            return {"seq": -1, "hash": "unreadable"}
        return best

    def append(
        self,
        conn: Connection,
        *,
        action: str,
        subject: str,
        details: dict[str, Any] | None = None,
        actor: str | None = None,
        head: tuple[int, str] | None = None,
        with_statement: tuple[Any, dict[str, Any]] | None = None,
        last: bool = False,
    ) -> AuditEntry:
        """Append one entry in ``conn``'s (serialized write) transaction.

        ``head``: ``(seq, hash)`` of the newest entry, when the caller read it in this transaction after taking
        the write lock (saves a query; ``(0, GENESIS)`` for an empty chain). ``with_statement``: ``(insert,
        params)`` built by the caller as its own CTE-carrying INSERT of this entry (PostgreSQL: the caller's
        writes ride in the same statement, one round trip); its params are merged with the entry's columns.
        ``last``: this is the transaction's last statement (PostgreSQL: sent with the COMMIT).
        """
        if head is None:
            newest = conn.execute(_LAST_ENTRY).first()
            head = (int(newest[0]), str(newest[1])) if newest else (0, GENESIS)
        seq = head[0] + 1
        prev = head[1]
        ts = now_iso()
        who = actor or self.actor
        details_json = canonical(details or {}).decode()
        h = entry_hash(seq, ts, who, action, subject, details_json, prev)
        row = {"seq": seq, "ts": ts, "actor": who, "action": action, "subject": subject,
               "details_json": details_json, "prev_hash": prev, "hash": h}
        stmt, params = (_INSERT_ENTRY, row) if with_statement is None else (with_statement[0],
                                                                            {**with_statement[1], **row})
        if last:
            commit_with(conn, stmt, params)
        else:
            conn.execute(stmt, params)
        return AuditEntry(seq, ts, who, action, subject, details or {}, prev, h)

    def entries(
        self,
        *,
        limit: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        newest_first: bool = True,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """Entries filtered by actor, action prefix or subject prefix; ``before``: only older than that seq.

        Prefixes match case-sensitively on every database. A page of the newest matches (``limit`` set) is
        found in two steps, so that its cost does not grow with the log: the newest ``_PROBE`` entries are
        searched first (enough when matches are frequent), then the filter's index, reading only sequence
        numbers, before the page's rows are fetched.
        """
        conds = self._on(audit_log, actor, action, subject)
        if before is not None:
            conds.append(audit_log.c.seq < before)
        order = audit_log.c.seq.desc() if newest_first else audit_log.c.seq.asc()
        with self.db.read() as conn:
            if limit and newest_first and (action or subject):
                # 1. Matches among the newest entries: one short backwards walk of the table.
                window = select(audit_log).order_by(audit_log.c.seq.desc()).limit(self._PROBE)
                if before is not None:
                    window = window.where(audit_log.c.seq < before)
                recent = window.subquery()
                probe = select(recent).where(*self._on(recent, actor, action, subject)).order_by(
                    recent.c.seq.desc()).limit(limit)
                rows = conn.execute(probe).all()
                if len(rows) < limit:
                    # 2. Too few there: the index of the filter (sorting sequence numbers only), then the rows.
                    # The subject, when given, is the most selective filter: keep SQLite (which has no
                    # statistics) from walking the action's or actor's index instead.
                    conds = self._on(audit_log, actor, action, subject, subject_index=bool(subject))
                    if before is not None:
                        conds.append(audit_log.c.seq < before)
                    seqs = conn.execute(select(audit_log.c.seq).where(*conds).order_by(order).limit(limit)).scalars()
                    rows = conn.execute(select(audit_log).where(audit_log.c.seq.in_(list(seqs))).order_by(order)).all()
            else:
                q = select(audit_log).where(*conds).order_by(order)
                if limit:
                    q = q.limit(limit)
                rows = conn.execute(q).all()
        return [_row_entry(r) for r in rows]

    _PROBE = 4096

    def _prefix(self, column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
        """``column`` starts with ``prefix``, case-sensitively, in a form the column's index serves.

        SQLite's LIKE ignores ASCII case, so it cannot use a (binary) index and scans the whole log; a range
        on the same column can, and it makes the match case-sensitive, as LIKE is on PostgreSQL. (On
        PostgreSQL a range is not used: under a linguistic collation the strings with a prefix need not be
        contiguous.)
        """
        like = column.startswith(prefix, autoescape=True)
        if self.db.dialect != "sqlite":
            return like
        upper = _successor(prefix)
        return and_(column >= prefix, like) if upper is None else and_(column >= prefix, column < upper, like)

    def _on(self, table: Any, actor: str | None, action: str | None, subject: str | None, *,
            subject_index: bool = False) -> list[ColumnElement[bool]]:
        """The filters of ``entries`` on the columns of ``table`` (the log, or a subquery of it).

        ``subject_index``: only the subject's index may serve the query; the other columns are compared as
        ``column || ''``, which SQLite (like PostgreSQL) never looks up in an index.
        """
        def col(c: ColumnElement[str]) -> ColumnElement[str]:
            return c.op("||")(literal("")) if subject_index else c

        conds: list[ColumnElement[bool]] = []
        if actor:
            conds.append(col(table.c.actor) == actor)
        if action:
            conds.append(self._prefix(col(table.c.action), action))
        if subject:
            conds.append(self._prefix(table.c.subject, subject))
        return conds

    def newest(
        self,
        actions: tuple[str, ...],
        *,
        subject: str | None = None,
        subject_prefix: str | None = None,
        match: Callable[[AuditEntry], bool] | None = None,
        batch: int = 64,
    ) -> AuditEntry | None:
        """The newest entry with one of ``actions`` (exact) on ``subject`` (or under ``subject_prefix``)
        that ``match`` accepts; read newest first in small batches (indexed by action)."""
        q = select(audit_log).where(audit_log.c.action.in_(actions))
        if subject is not None:
            q = q.where(audit_log.c.subject == subject)
        if subject_prefix is not None:
            q = q.where(audit_log.c.subject.startswith(subject_prefix, autoescape=True))
        before: int | None = None
        while True:
            page = q if before is None else q.where(audit_log.c.seq < before)
            with self.db.quick_read() as conn:  # one statement per page: no BEGIN/COMMIT round trips
                rows = conn.execute(page.order_by(audit_log.c.seq.desc()).limit(batch)).all()
            for r in rows:
                e = _row_entry(r)
                if match is None or match(e):
                    return e
            if len(rows) < batch:
                return None
            before = int(rows[-1].seq)

    def range(self, first: int, last: int) -> list[AuditEntry]:
        """Entries ``first..last`` (inclusive) in order, as stored."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(audit_log).where(audit_log.c.seq >= first, audit_log.c.seq <= last).order_by(audit_log.c.seq)
            ).all()
        return [_row_entry(r) for r in rows]

    def count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())

    def _iter_rows(self, batch: int = 5000) -> Iterator[Any]:
        after = 0
        while True:
            with self.db.read() as conn:
                rows = conn.execute(
                    select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(batch)
                ).all()
            if not rows:
                return
            yield from rows
            after = int(rows[-1].seq)

    def verify(
        self,
        *,
        expected: dict[int, tuple[str, int]] | None = None,
        visit: Callable[[AuditEntry], None] | None = None,
    ) -> ChainReport:
        """Walk the chain from the first entry; report the first entry that does not fit.

        ``expected`` maps sequence numbers to ``(hash, checkpoint number)`` signed by checkpoints: the
        chain must reach each and hold that hash there. ``visit`` sees every entry that fits.
        """
        expected = expected or {}
        prev = GENESIS
        expected_seq = 1
        n = 0
        head = self.read_head()
        head_seq = int(head.get("seq", -1)) if head else 0
        if head is not None and head_seq < 0:
            return ChainReport(False, 0, None, f"the audit head file {self.head_path} is unreadable.", prev)
        for r in self._iter_rows():
            n += 1
            seq = int(r.seq)
            if seq != expected_seq:
                return ChainReport(
                    False, n, expected_seq, f"entry {expected_seq} is missing (next stored entry is {seq}).", prev
                )
            if r.prev_hash != prev:
                return ChainReport(
                    False,
                    n,
                    seq,
                    f"entry {seq} does not link to entry {seq - 1} (deleted, inserted or reordered).",
                    prev,
                )
            actual = entry_hash(seq, r.ts, r.actor, r.action, r.subject, r.details_json, r.prev_hash)
            if actual != r.hash:
                return ChainReport(False, n, seq, f"entry {seq} was edited after it was written (hash mismatch).", prev)
            if head is not None and seq == head_seq and r.hash != head.get("hash"):
                return ChainReport(
                    False, n, seq, f"entry {seq} differs from the recorded head of the chain (rewritten).", prev
                )
            signed = expected.get(seq)
            if signed is not None and signed[0] != r.hash:
                return ChainReport(
                    False, n, seq,
                    f"entry {seq} differs from what signed checkpoint {signed[1]} recorded (the chain was rewritten).",
                    prev,
                )
            if visit is not None:
                visit(_row_entry(r))
            prev = r.hash
            expected_seq += 1
        newest_signed = max(expected, default=0)
        if newest_signed > n:
            return ChainReport(
                False,
                n,
                n + 1,
                f"entries {n + 1}..{newest_signed} were deleted (signed checkpoint {expected[newest_signed][1]} "
                f"covers entry {newest_signed}; the chain ends at {n}).",
                prev,
            )
        if head is not None and head_seq > n:
            return ChainReport(
                False,
                n,
                n + 1,
                f"entries {n + 1}..{head_seq} were deleted (the chain's recorded head is {head_seq}).",
                prev,
            )
        return ChainReport(True, n, None, "", prev)


def _row_entry(r: Any) -> AuditEntry:
    try:
        details = json.loads(r.details_json)
    except ValueError:
        details = {"_unparseable": True}
    return AuditEntry(int(r.seq), r.ts, r.actor, r.action, r.subject, details, r.prev_hash, r.hash)
