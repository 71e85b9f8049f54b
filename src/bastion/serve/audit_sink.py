"""The server's request audit journal: one append-only, hash-chained JSON-lines file per server process,
written by group commit (requests that finish together share one write, and no response leaves first).

Why a journal and not the project's audit table: prediction traffic is thousands of entries a second from
several processes; in the database each group would queue on the single serialized writer lock that
promotions, gates and key changes also take, and would swamp the lifecycle log. The journal is opened and
sealed by entries in the project audit log (``serve.start`` / ``serve.stop`` carry its id, path, entry
count and head hash), so deleting or rewriting a journal is detected by :func:`verify_journal`.

Durability: ``"write"`` (default) hands each group to the kernel with one ``write(2)`` before any of its
responses leave, so a crash or ``kill -9`` of the server loses nothing acknowledged (the same guarantee as
the project database's SQLite WAL with ``synchronous=NORMAL``); a background ``fdatasync`` bounds what a
power loss could take to ``sync_interval_s``. ``"fsync"`` waits for ``fdatasync`` per group (power-loss
safe; costs one disk flush of latency per group).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bastion.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["GENESIS", "AuditJournal", "JournalReport", "iter_journal", "journal_dir", "verify_journal",
           "verify_journals"]

log = logging.getLogger("bastion.serve")

GENESIS = "0" * 64
Durability = Literal["write", "fsync"]


def journal_dir(home: Path) -> Path:
    """``<project home>/serve/audit``."""
    return Path(home) / "serve" / "audit"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _chain(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


class AuditJournal:
    """Append request entries with group commit. Open it, then ``await record(entry)`` from the event loop.

    Parameters
    ----------
    directory
        Where the journal file goes (one file per journal id).
    durability
        ``"write"`` or ``"fsync"`` (see the module docstring).
    """

    def __init__(
        self,
        directory: Path,
        *,
        durability: Durability = "write",
        sync_interval_s: float = 0.2,
        context: dict[str, Any] | None = None,
    ) -> None:
        if durability not in ("write", "fsync"):
            raise ConfigError(f"Audit durability must be 'write' or 'fsync'; got {durability!r}.")
        self.directory = Path(directory)
        self.durability: Durability = durability
        self.sync_interval_s = sync_interval_s
        self.journal_id = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = self.directory / f"journal-{self.journal_id}.jsonl"
        self.seq = 0
        self.head = GENESIS
        self._fd: int | None = None
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._scheduled = False
        self._syncing = False
        self._dirty = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: BaseException | None = None
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self._wlock = threading.Lock()
        self._context = dict(context or {})
        self.groups = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o640)
        except OSError as e:
            raise StoreError(f"Cannot open the audit journal {self.path}: {e.strerror}.") from e
        header = {"kind": "journal.open", "journal_id": self.journal_id, "pid": os.getpid(),
                  "ts": datetime.now(UTC).isoformat(timespec="microseconds"), **self._context}
        self._write_sync([header])
        os.fsync(self._fd)
        if self.durability == "write":
            self._syncer = threading.Thread(target=self._sync_loop, name="bastion-audit-sync", daemon=True)
            self._syncer.start()

    def close(self) -> dict[str, Any]:
        """Flush, fsync and close; returns ``{journal_id, path, entries, head}`` for the seal entry."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(timeout=5)
        if self._pending:  # the loop is gone; write what is left so nothing is lost
            batch, self._pending = self._pending, []
            self._write_sync([e for e, _ in batch])
        if self._fd is not None:
            with self._wlock:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
        return {"journal_id": self.journal_id, "path": str(self.path), "entries": self.seq, "head": self.head}

    @property
    def is_open(self) -> bool:
        return self._fd is not None and self._failed is None

    # -- writing -----------------------------------------------------------------------------
    def _write_sync(self, entries: list[dict[str, Any]]) -> None:
        lines = []
        for e in entries:
            self.seq += 1
            e["seq"] = self.seq
            e["prev"] = self.head
            body = _canonical(e)
            h = hashlib.sha256(body).hexdigest()
            e["hash"] = h
            self.head = h
            # The line is the hashed canonical form with the hash appended as a last key: one encoding per
            # entry. Readers parse JSON, so key order in the file does not matter to them or to the verifier.
            lines.append(body[:-1] + b',"hash":"' + h.encode() + b'"}')
        data = b"\n".join(lines) + b"\n"
        if self._fd is None:
            raise StoreError("The audit journal is closed.")
        # No lock here: this runs on the event loop, and a concurrent fdatasync on the same descriptor is
        # safe; only close() (same thread) and the syncers (which it joins or waits for) touch the fd's life.
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._dirty = True

    async def record(self, entry: dict[str, Any]) -> None:
        """Append ``entry``; returns once it is durable (with its group). Raises :class:`StoreError`."""
        if self._failed is not None or self._fd is None:
            raise StoreError("The audit journal is not writable; requests are refused until it is.")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((entry, fut))
        if not self._scheduled and not self._syncing:
            self._scheduled = True
            loop.call_soon(self._flush)
        await fut

    def _flush(self) -> None:
        self._scheduled = False
        if self._syncing or not self._pending:
            return
        batch, self._pending = self._pending, []
        self.groups += 1
        try:
            self._write_sync([e for e, _ in batch])
        except (OSError, StoreError) as e:
            self._fail(e, batch)
            return
        if self.durability == "write":
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            return
        self._syncing = True
        assert self._loop is not None
        task = self._loop.run_in_executor(None, self._fdatasync)
        task.add_done_callback(lambda t: self._synced(t, batch))

    def _fdatasync(self) -> None:
        with self._wlock:
            if self._fd is not None:
                os.fdatasync(self._fd)
                self._dirty = False

    def _synced(self, task: asyncio.Future[None], batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        self._syncing = False
        err = task.exception()
        if err is not None:
            self._fail(err, batch)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)
        if self._pending:
            self._flush()

    def _fail(self, err: BaseException, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        log.error("audit journal %s failed: %s; refusing requests", self.path, err)
        self._failed = err
        for _, fut in batch + self._pending:
            if not fut.done():
                fut.set_exception(StoreError(f"audit journal write failed: {err}"))
        self._pending = []

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_interval_s):
            if self._dirty:
                try:
                    self._fdatasync()
                except OSError as e:  # reported on the next write, which will fail the same way
                    log.error("audit journal fdatasync failed: %s", e)


# ------------------------------------------------------------------------------------------ verify


@dataclass(frozen=True)
class JournalReport:
    """Whether a journal's chain holds; ``torn_tail`` is an unfinished last line (never acknowledged)."""

    path: str
    ok: bool
    entries: int
    head: str
    problem: str = ""
    torn_tail: bool = False
    journal_id: str = ""
    sealed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def iter_journal(path: str | Path) -> Iterator[dict[str, Any]]:
    """Entries of a journal (complete lines only)."""
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            yield json.loads(raw)


def verify_journal(path: str | Path) -> JournalReport:
    """Re-hash every entry of one journal and check the links."""
    prev, n, jid = GENESIS, 0, ""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return JournalReport(str(path), False, 0, prev, f"unreadable: {e.strerror}")
    lines = data.split(b"\n")
    torn = bool(lines and lines[-1])
    for raw in lines[:-1]:
        n += 1
        try:
            entry = json.loads(raw)
        except ValueError:
            return JournalReport(str(path), False, n, prev, f"entry {n} is not JSON", torn, jid)
        h = entry.pop("hash", None)
        if entry.get("seq") != n or entry.get("prev") != prev:
            return JournalReport(str(path), False, n, prev, f"entry {n} does not link to entry {n - 1}", torn, jid)
        if _chain(entry) != h:
            return JournalReport(str(path), False, n, prev, f"entry {n} was edited (hash mismatch)", torn, jid)
        if n == 1:
            jid = str(entry.get("journal_id", ""))
        prev = str(h)
    return JournalReport(str(path), True, n, prev, "", torn, jid)


def verify_journals(project: ProjectHandle) -> list[JournalReport]:
    """Every journal of this folder, checked against the ``serve.start``/``serve.stop`` entries of the
    project audit log: a journal the log names in this folder must exist, and a sealed one must end at its
    sealed head. Journals of servers in other folders (other machines sharing the database) are verified
    where they are; their sealed heads are in the shared audit chain."""
    opened: dict[str, dict[str, Any]] = {}
    sealed: dict[str, dict[str, Any]] = {}
    for entry in project.audit.entries(action="serve.", newest_first=False, limit=None):
        jid = str(entry.details.get("journal_id", ""))
        if entry.action == "serve.start" and jid:
            opened[jid] = entry.details
        elif entry.action == "serve.stop" and jid:
            sealed[jid] = entry.details
    reports: list[JournalReport] = []
    seen: set[str] = set()
    for path in sorted(journal_dir(project.home).glob("journal-*.jsonl")):
        r = verify_journal(path)
        jid = r.journal_id
        seen.add(jid)
        seal = sealed.get(jid)
        ok, problem = r.ok, r.problem
        if ok and jid not in opened:
            ok, problem = False, "no serve.start entry in the project audit log names this journal"
        if ok and seal is not None and (seal.get("entries") != r.entries or seal.get("head") != r.head):
            ok, problem = False, (f"sealed at {seal.get('entries')} entries / head {str(seal.get('head'))[:12]}, "
                                  f"but holds {r.entries} / {r.head[:12]} (rewritten or truncated)")
        reports.append(JournalReport(r.path, ok, r.entries, r.head, problem, r.torn_tail, jid, seal is not None))
    here = journal_dir(project.home).resolve()
    for jid, details in opened.items():
        if jid not in seen:
            named = Path(str(details.get("journal", "")))
            if str(named) and named.parent.resolve() != here:
                # Journals stay on the machine (folder) that served: another server of the same deployment
                # wrote this one; it is verified there. The audit chain (hash-linked, shared) holds its
                # start and its sealed head, so its path cannot be changed to dodge this check.
                continue
            reports.append(JournalReport(str(details.get("journal", "")), False, 0, GENESIS,
                                         "the project audit log names this journal but the file is missing",
                                         journal_id=jid))
    return reports


def request_entry(**fields: Any) -> dict[str, Any]:
    """A journal entry with a timestamp (fields: request_id, key_id, model, version, route, outcome, …)."""
    return {"ts": time.time(), **fields}
