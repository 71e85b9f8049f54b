"""The advisory store: offline, idempotent import of OSV exports (zip, folder, JSON file) into the metadata
database, audited with the import's digest and time.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from bastion.audit.log import now_iso
from bastion.errors import DataError
from bastion.store.schema import vuln_advisories, vuln_affected
from bastion.vulns.osv import Advisory, parse_record

if TYPE_CHECKING:
    from bastion.project import Project

__all__ = ["ImportResult", "advisory_count", "import_advisories", "iter_osv_source"]

_MAX_RECORD_BYTES = 8 << 20  # one OSV record; the largest real PyPI record is well under 1 MiB
_MAX_MEMBERS = 2_000_000
_BATCH = 2_000


@dataclass(frozen=True)
class ImportResult:
    """What one import did: records read, new, replaced by a newer ``modified``, unchanged, withdrawn, ignored."""

    source: str
    digest: str
    imported_at: str
    records: int
    added: int
    updated: int
    unchanged: int
    withdrawn: int
    ignored: int

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, **self.__dict__}


def _load_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{where} is not valid JSON ({e}); an OSV export holds one JSON record per file.") from e


def _records_of(doc: Any, where: str) -> Iterator[tuple[str, Any]]:
    # a single record, a JSON list of records, or {"vulns": [...]} (the OSV query API's shape)
    if isinstance(doc, list):
        for i, rec in enumerate(doc):
            yield f"{where}[{i}]", rec
    elif isinstance(doc, dict) and "id" not in doc and isinstance(doc.get("vulns"), list):
        for i, rec in enumerate(doc["vulns"]):
            yield f"{where}.vulns[{i}]", rec
    else:
        yield where, doc


def iter_osv_source(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every ``*.json`` in an OSV export: a zip, a folder (recursively) or one file."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.json") if f.is_file())
        if not files:
            raise DataError(f"{p} holds no .json files; give an OSV export (zip or folder of OSV JSON records).")
        for f in files:
            if f.stat().st_size > _MAX_RECORD_BYTES:
                raise DataError(f"{f} is larger than {_MAX_RECORD_BYTES >> 20} MiB; not an OSV record.")
            yield str(f.relative_to(p)), f.read_bytes()
        return
    if not p.is_file():
        raise DataError(f"{p} does not exist; give an OSV export zip, a folder of OSV JSON, or a JSON file.")
    if zipfile.is_zipfile(p):
        try:
            with zipfile.ZipFile(p) as zf:
                members = [m for m in zf.infolist() if not m.is_dir() and m.filename.endswith(".json")]
                if len(members) > _MAX_MEMBERS:
                    raise DataError(f"{p} has {len(members):,} members; more than any OSV export ({_MAX_MEMBERS:,}).")
                for m in members:
                    if m.file_size > _MAX_RECORD_BYTES:
                        raise DataError(f"{p}!{m.filename} is larger than {_MAX_RECORD_BYTES >> 20} MiB uncompressed.")
                    with zf.open(m) as fh:
                        data = fh.read(_MAX_RECORD_BYTES + 1)
                    if len(data) > _MAX_RECORD_BYTES:  # the header lied about the size
                        raise DataError(f"{p}!{m.filename} inflates beyond {_MAX_RECORD_BYTES >> 20} MiB.")
                    yield f"{p.name}!{m.filename}", data
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(f"{p} is not a readable zip archive: {e}.") from e
        return
    if p.stat().st_size > 64 * _MAX_RECORD_BYTES:
        raise DataError(f"{p} is too large for a JSON file of OSV records; give a zip or folder export.")
    yield p.name, p.read_bytes()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(x for x in path.rglob("*.json") if x.is_file()):
            h.update(str(f.relative_to(path)).encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
        return "sha256:" + h.hexdigest()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _rows(
    adv: Advisory, record_digest: str, import_digest: str, at: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    head = {
        "id": adv.id,
        "modified": adv.modified,
        "published": adv.published,
        "withdrawn": adv.withdrawn,
        "aliases_json": _dumps(list(adv.aliases)),
        "summary": adv.summary,
        "severity": adv.severity,
        "score": adv.score,
        "vector": adv.vector,
        "record_digest": record_digest,
        "import_digest": import_digest,
        "imported_at": at,
    }
    affected = [] if adv.withdrawn else [
        {
            "advisory_id": adv.id,
            "package": a.package,
            "ranges_json": _dumps([[list(e) for e in r] for r in a.ranges]),
            "versions_json": _dumps(list(a.versions)),
        }
        for a in adv.affected
    ]
    return head, affected


def _newer(a: str, b: str) -> bool:
    """True when RFC 3339 time ``a`` is later than ``b`` (compared as UTC instants where they parse)."""
    from datetime import datetime

    def parse(s: str) -> datetime | None:
        try:
            return datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            return None

    pa_, pb = parse(a), parse(b)
    if pa_ is not None and pb is not None and (pa_.tzinfo is None) == (pb.tzinfo is None):
        return pa_ > pb
    return a > b


def import_advisories(
    project: Project, source: str | Path, *, progress: Callable[[int, int], None] | None = None
) -> ImportResult:
    """Import OSV records from ``source`` (zip, folder or JSON file); idempotent.

    A record replaces the stored one only when its ``modified`` time is later. Withdrawn records are
    kept (so an older copy cannot come back) but match nothing. Records without a PyPI entry are
    ignored. The whole import is one transaction with one audit entry naming the source's digest.

    Raises
    ------
    DataError
        The source is missing, not an OSV export, or a record is malformed (the message names it).
    """
    path = Path(source)
    digest = _file_digest(path) if path.exists() else ""
    parsed: dict[str, tuple[Advisory, str]] = {}
    records = ignored = 0
    for name, data in iter_osv_source(path):
        doc = _load_json(data, name)
        single = isinstance(doc, dict) and "id" in doc
        for where, rec in _records_of(doc, name):
            records += 1
            adv = parse_record(rec, where=where)
            if not adv.affected and not adv.withdrawn:
                ignored += 1  # no PyPI package in it
                continue
            # a file holding one record is digested as published; records of a list as canonical JSON
            raw = data if single else json.dumps(rec, sort_keys=True).encode()
            rec_digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            prior = parsed.get(adv.id)
            if prior is None or _newer(adv.modified, prior[0].modified):
                parsed[adv.id] = (adv, rec_digest)
            if progress is not None and records % 5000 == 0:
                progress(records, 0)
    if records == 0:
        raise DataError(f"{path} holds no OSV records.")
    at = now_iso()
    added = updated = unchanged = withdrawn = 0
    with project.transaction() as conn:
        stored = dict(conn.execute(select(vuln_advisories.c.id, vuln_advisories.c.modified)).all())
        heads: list[dict[str, Any]] = []
        affected: list[dict[str, Any]] = []
        replace: list[str] = []
        for rid, (adv, rec_digest) in parsed.items():
            old = stored.get(rid)
            if old is not None and not _newer(adv.modified, str(old)):
                unchanged += 1
                continue
            if old is None:
                added += 1
            else:
                updated += 1
                replace.append(rid)
            withdrawn += adv.withdrawn is not None
            head, rows = _rows(adv, rec_digest, digest, at)
            heads.append(head)
            affected.extend(rows)
        for i in range(0, len(replace), 500):
            chunk = replace[i : i + 500]
            conn.execute(delete(vuln_affected).where(vuln_affected.c.advisory_id.in_(chunk)))
            conn.execute(delete(vuln_advisories).where(vuln_advisories.c.id.in_(chunk)))
        for i in range(0, len(heads), _BATCH):
            conn.execute(vuln_advisories.insert(), heads[i : i + _BATCH])
        for i in range(0, len(affected), _BATCH):
            conn.execute(vuln_affected.insert(), affected[i : i + _BATCH])
        result = ImportResult(path.name, digest, at, records, added, updated, unchanged, withdrawn, ignored)
        details = result.to_dict()
        details.pop("schema_version")
        project.record(conn, "vulns.import", path.name, details)
    if progress is not None:
        progress(records, records)
    return result


def advisory_count(project: Project) -> int:
    """How many advisories (withdrawn included) the store holds."""
    with project.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(vuln_advisories)).scalar() or 0)
