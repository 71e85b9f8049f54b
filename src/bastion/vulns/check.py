"""Advisories matched against each model version's recorded environment; results stored per version.

One query per chunk of package names (indexed on the normalised name) and one parse per distinct
environment document keep a check of a thousand versions well under a second.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, tuple_, update

from bastion.audit.log import now_iso
from bastion.errors import BastionError
from bastion.store.schema import aliases, models, vuln_advisories, vuln_affected, vuln_results
from bastion.vulns.matching import CompiledEntry
from bastion.vulns.osv import normalize_name, severity_rank

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["Match", "VersionVulns", "VulnReport", "check_versions", "stored_results"]

_CHUNK = 500
_env_cache: dict[str, dict[str, str]] = {}  # environment documents are content-addressed: safe to keep


@dataclass(frozen=True)
class Match:
    """One advisory matching one installed package of a version."""

    id: str
    package: str
    installed: str
    severity: str
    aliases: tuple[str, ...] = ()
    score: float | None = None
    vector: str | None = None
    fixed: str | None = None
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "package": self.package,
            "installed": self.installed,
            "severity": self.severity,
            "score": self.score,
            "vector": self.vector,
            "fixed": self.fixed,
            "summary": self.summary,
        }

    def row(self) -> list[Any]:
        """The stored form: ``[id, package, installed, severity, fixed]`` (details live with the advisory)."""
        return [self.id, self.package, self.installed, self.severity, self.fixed]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Match:
        return cls(
            id=str(d["id"]), package=str(d["package"]), installed=str(d["installed"]), severity=str(d["severity"]),
            aliases=tuple(d.get("aliases") or ()), score=d.get("score"), vector=d.get("vector"),
            fixed=d.get("fixed"), summary=str(d.get("summary") or ""),
        )


@dataclass(frozen=True)
class VersionVulns:
    """The advisories matching one model version, the aliases it serves, and what is new since last time."""

    name: str
    version: int
    aliases: tuple[str, ...]
    matches: tuple[Match, ...]
    new: tuple[Match, ...] = ()
    checked_at: str = ""
    error: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def affected(self) -> bool:
        return bool(self.matches)

    @property
    def max_severity(self) -> str | None:
        if not self.matches:
            return None
        return max((m.severity for m in self.matches), key=lambda s: severity_rank(s))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.ref,
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "affected": self.affected,
            "max_severity": self.max_severity,
            "matches": [m.to_dict() for m in self.matches],
            "new": [m.id for m in self.new],
            "checked_at": self.checked_at,
            "error": self.error,
        }


@dataclass(frozen=True)
class VulnReport:
    """The outcome of one check over a set of versions."""

    versions: tuple[VersionVulns, ...]
    advisories: int
    checked_at: str
    duration_s: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def affected(self) -> tuple[VersionVulns, ...]:
        return tuple(v for v in self.versions if v.affected)

    @property
    def exit_code(self) -> int:
        """1 when a version is affected (or could not be checked: fail closed), else 0."""
        return 1 if any(v.affected or v.error for v in self.versions) else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "kind": "vulnerability_check",
            "checked_at": self.checked_at,
            "advisories": self.advisories,
            "duration_s": round(self.duration_s, 4),
            "versions": [v.to_dict() for v in self.versions],
            "affected": [v.ref for v in self.affected],
            "notes": list(self.notes),
        }


def _targets(
    project: ProjectHandle, ref: str | None, name: str | None = None
) -> list[tuple[str, int, tuple[str, ...], str | None]]:
    """``(name, version, aliases, environment digest)`` of ``ref``, or of every version under an alias
    (of model ``name`` only, when given)."""
    if ref is not None:
        mv = project.get_model(ref)
        return [(mv.name, mv.version, tuple(mv.aliases), mv.environment_digest)]
    query = (
        select(aliases.c.name, aliases.c.alias, models.c.version, models.c.environment_digest)
        .join(models, (models.c.name == aliases.c.name) & (models.c.version == aliases.c.version))
        .where(aliases.c.kind == "model", models.c.deleted_at.is_(None))
        .order_by(aliases.c.name, models.c.version, aliases.c.alias)
    )
    if name is not None:
        query = query.where(aliases.c.name == name)
    with project.db.read() as conn:
        rows = conn.execute(query).all()
    out: dict[tuple[str, int], tuple[list[str], str | None]] = {}
    for r in rows:
        out.setdefault((r.name, int(r.version)), ([], r.environment_digest))[0].append(r.alias)
    return [(n, v, tuple(a), env) for (n, v), (a, env) in out.items()]


def _packages(project: ProjectHandle, digest: str) -> dict[str, str]:
    hit = _env_cache.get(digest)
    if hit is None:
        doc = json.loads(project.blobs.get_bytes(digest, what="recorded environment"))
        raw = doc.get("packages") if isinstance(doc, dict) else None
        if not isinstance(raw, dict):
            raise BastionError(f"The recorded environment {digest[:19]}… has no 'packages' mapping.")
        hit = {normalize_name(str(k)): str(v) for k, v in raw.items()}
        _env_cache[digest] = hit
    return hit


def _advisories_for(project: ProjectHandle, names: Iterable[str]) -> dict[str, list[tuple[CompiledEntry, Any]]]:
    """Per normalised package name: (compiled affected entry, advisory row) of every non-withdrawn advisory."""
    names = sorted(set(names))
    out: dict[str, list[tuple[CompiledEntry, Any]]] = {}
    heads: dict[str, Any] = {}
    with project.db.read() as conn:
        for i in range(0, len(names), _CHUNK):
            chunk = names[i : i + _CHUNK]
            rows = conn.execute(
                select(vuln_affected.c.advisory_id, vuln_affected.c.package, vuln_affected.c.ranges_json,
                       vuln_affected.c.versions_json).where(vuln_affected.c.package.in_(chunk))
            ).all()
            ids = sorted({r.advisory_id for r in rows} - set(heads))
            for j in range(0, len(ids), _CHUNK):
                for h in conn.execute(
                    select(vuln_advisories.c.id, vuln_advisories.c.aliases_json, vuln_advisories.c.severity,
                           vuln_advisories.c.score, vuln_advisories.c.vector, vuln_advisories.c.summary,
                           vuln_advisories.c.withdrawn).where(vuln_advisories.c.id.in_(ids[j : j + _CHUNK]))
                ):
                    heads[h.id] = h
            for r in rows:
                head = heads.get(r.advisory_id)
                if head is None or head.withdrawn:
                    continue
                entry = CompiledEntry(json.loads(r.ranges_json), json.loads(r.versions_json))
                out.setdefault(r.package, []).append((entry, head))
    return out


_Row = tuple[tuple[int, str, str], "Match", str]
_cache_lock = threading.Lock()
# Compiled advisories per package and the matches per (package, installed version), kept between checks in
# one process (``monitor run``) until the advisory store changes (its generation: count and newest import).
_cache: dict[str, Any] = {"key": None, "entries": {}, "rows": {}, "hits": {}}


def _cached_advisories(
    project: ProjectHandle, names: set[str]
) -> tuple[dict[str, list[tuple[CompiledEntry, Any]]], dict[tuple[str, str], list[_Row]],
           dict[tuple[str, str], list[_Row]]]:
    from sqlalchemy import func

    with project.db.read() as conn:
        count, newest = conn.execute(
            select(func.count(), func.max(vuln_advisories.c.imported_at)).select_from(vuln_advisories)).one()
    key = (project.db.url, int(count or 0), newest)
    with _cache_lock:
        if _cache["key"] != key:
            _cache.update(key=key, entries={}, rows={}, hits={})
        entries: dict[str, list[tuple[CompiledEntry, Any]]] = _cache["entries"]
        rows: dict[tuple[str, str], list[_Row]] = _cache["rows"]  # every (package, installed) evaluated
        hits: dict[tuple[str, str], list[_Row]] = _cache["hits"]  # the ones that match something
        missing = names - entries.keys()
    if missing:
        fetched = _advisories_for(project, missing)
        with _cache_lock:
            if _cache["key"] == key:
                for n in missing:
                    entries[n] = fetched.get(n, [])
            else:  # the store changed meanwhile: use what was just read, uncached
                entries = {**entries, **{n: fetched.get(n, []) for n in missing}}
                rows, hits = {}, {}
    return {n: e for n, e in entries.items() if e}, rows, hits


def check_versions(
    project: ProjectHandle, ref: str | None = None, *, name: str | None = None, store: bool = True
) -> VulnReport:
    """Match stored advisories against ``ref``'s environment, or every version under an alias (of ``name``).

    Results are stored per version (``stored_results``) and each version's ``new`` lists the
    advisories that were not matched by its previous stored result.
    """
    import time

    started = time.perf_counter()
    targets = _targets(project, ref, name)
    envs: dict[tuple[str, int], dict[str, str]] = {}
    errors: dict[tuple[str, int], str] = {}
    for name, version, _, digest in targets:
        if not digest:
            errors[(name, version)] = "no recorded environment"
            continue
        try:
            envs[(name, version)] = _packages(project, digest)
        except (BastionError, ValueError) as e:
            errors[(name, version)] = f"the recorded environment cannot be read: {e}"
    by_package, memo_rows, hits = _cached_advisories(project, {p for pk in envs.values() for p in pk})
    aliases_of: dict[str, tuple[str, ...]] = {}
    at = now_iso()
    previous = _stored_json(project, [(n, v) for n, v, _, _ in targets])
    results: list[VersionVulns] = []
    encoded: list[str] = []
    by_env: dict[str, tuple[list[Match], str]] = {}  # versions logged from one environment share its result
    for name, version, als, digest in targets:
        key = (name, version)
        hit = by_env.get(digest or "") if key not in errors else None
        if hit is not None:
            _finish(results, encoded, previous, key, als, hit[0], hit[1], at, errors)
            continue
        rows: list[_Row] = []
        env = envs.get(key) or {}
        items = env.items()
        # only (package, installed) pairs never seen before are evaluated; the matching ones are found by a
        # set intersection (in C), so a package without a match costs one membership test per version
        for pair in [p for p in items if p not in memo_rows]:
            package, installed = pair
            found: list[_Row] = []
            seen: set[str] = set()
            for entry, head in by_package.get(package, ()):
                if head.id not in seen and entry.affects(installed):
                    seen.add(head.id)  # one record may name a package twice (two affected entries)
                    if head.id not in aliases_of:
                        aliases_of[head.id] = tuple(json.loads(head.aliases_json))
                    m = Match(id=head.id, package=package, installed=installed, severity=head.severity,
                              aliases=aliases_of[head.id], score=head.score, vector=head.vector,
                              fixed=entry.fixed_after(installed), summary=head.summary)
                    found.append(((-severity_rank(m.severity), package, m.id), m,
                                  json.dumps(m.row(), separators=(",", ":"))))
            memo_rows[pair] = found
            if found:
                hits[pair] = found
        for pair in items & hits.keys():
            rows.extend(hits[pair])
        rows.sort(key=lambda r: r[0])
        matches = [r[1] for r in rows]
        text = "[" + ",".join(r[2] for r in rows) + "]"
        if digest and key not in errors:
            by_env[digest] = (matches, text)
        _finish(results, encoded, previous, key, als, matches, text, at, errors)
    if store and results:
        _store(project, results, encoded, previous)
    with project.db.read() as conn:
        from sqlalchemy import func

        count = int(conn.execute(select(func.count()).select_from(vuln_advisories)).scalar() or 0)
    notes = () if count else ("no advisories imported yet: run `bastion vulns import OSV-EXPORT` first",)
    return VulnReport(tuple(results), count, at, time.perf_counter() - started, notes)


def _finish(results: list[VersionVulns], encoded: list[str], previous: dict[tuple[str, int], str],
            key: tuple[str, int], als: tuple[str, ...], matches: list[Match], text: str, at: str,
            errors: dict[tuple[str, int], str]) -> None:
    encoded.append(text)
    before_text = previous.get(key)
    if before_text == text:
        new: tuple[Match, ...] = ()  # unchanged since the last check (the common case): nothing to parse
    else:
        before = {_key(d) for d in json.loads(before_text or "[]")}
        new = tuple(m for m in matches if (m.id, m.package) not in before)
    results.append(VersionVulns(key[0], key[1], als, tuple(matches), new, at, errors.get(key)))


def _store(project: ProjectHandle, results: list[VersionVulns], encoded: list[str],
           previous: dict[tuple[str, int], str]) -> None:
    """Write changed results; unchanged ones only get the new check time."""
    changed, same = [], []
    for r, text in zip(results, encoded, strict=True):
        if previous.get((r.name, r.version)) == text:
            same.append((r.name, r.version))
        else:
            changed.append({"name": r.name, "version": r.version, "checked_at": r.checked_at,
                            "count": len(r.matches), "max_severity": r.max_severity, "matches_json": text})
    keys = [(c["name"], c["version"]) for c in changed]
    affected = [r.ref for r in results if r.affected]
    at = results[0].checked_at
    with project.transaction() as conn:
        for i in range(0, len(keys), _CHUNK):
            conn.execute(delete(vuln_results).where(
                tuple_(vuln_results.c.name, vuln_results.c.version).in_(keys[i : i + _CHUNK])))
        for i in range(0, len(changed), 2000):
            conn.execute(vuln_results.insert(), changed[i : i + 2000])
        for i in range(0, len(same), _CHUNK):
            conn.execute(update(vuln_results).where(
                tuple_(vuln_results.c.name, vuln_results.c.version).in_(same[i : i + _CHUNK])).values(checked_at=at))
        project.record(conn, "vulns.check", results[0].ref if len(results) == 1 else "vulnerabilities", {
            "versions": len(results), "changed": len(changed), "affected": affected[:100],
            "affected_count": len(affected),
            "new": sorted({f"{r.ref} {m.id}" for r in results for m in r.new})[:100],
        })


def _stored_json(project: ProjectHandle, keys: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    out: dict[tuple[str, int], str] = {}
    with project.db.read() as conn:
        for i in range(0, len(keys), _CHUNK):
            for r in conn.execute(select(vuln_results.c.name, vuln_results.c.version, vuln_results.c.matches_json)
                                  .where(tuple_(vuln_results.c.name, vuln_results.c.version)
                                         .in_(keys[i : i + _CHUNK]))):
                out[(r.name, int(r.version))] = r.matches_json
    return out


def _key(item: Any) -> tuple[str, str]:
    # stored rows are [id, package, installed, severity, fixed]; early results were whole dicts
    return (str(item["id"]), str(item["package"])) if isinstance(item, dict) else (str(item[0]), str(item[1]))


def stored_results(
    project: ProjectHandle, keys: Iterable[tuple[str, int]] | None = None
) -> dict[tuple[str, int], list[Match]]:
    """The last stored matches per ``(name, version)`` (only versions that were checked), with the
    advisories' details (aliases, score, vector, summary) read back from the advisory store."""
    keys = list(keys) if keys is not None else None
    raw: dict[tuple[str, int], list[Any]] = {}
    with project.db.read() as conn:
        if keys is None:
            rows = list(conn.execute(select(vuln_results)))
        else:
            rows = []
            for i in range(0, len(keys), _CHUNK):
                rows += conn.execute(select(vuln_results).where(
                    tuple_(vuln_results.c.name, vuln_results.c.version).in_(keys[i : i + _CHUNK]))).all()
        for r in rows:
            raw[(r.name, int(r.version))] = json.loads(r.matches_json)
        ids = sorted({_key(item)[0] for items in raw.values() for item in items})
        heads: dict[str, Any] = {}
        for i in range(0, len(ids), _CHUNK):
            for h in conn.execute(select(vuln_advisories.c.id, vuln_advisories.c.aliases_json,
                                         vuln_advisories.c.score, vuln_advisories.c.vector, vuln_advisories.c.summary)
                                  .where(vuln_advisories.c.id.in_(ids[i : i + _CHUNK]))):
                heads[h.id] = h
    out: dict[tuple[str, int], list[Match]] = {}
    for key, items in raw.items():
        matches = []
        for item in items:
            if isinstance(item, dict):
                matches.append(Match.from_dict(item))
                continue
            rid, package, installed, severity, fixed = item
            head = heads.get(rid)
            matches.append(Match(id=rid, package=package, installed=installed, severity=severity, fixed=fixed,
                                 aliases=tuple(json.loads(head.aliases_json)) if head is not None else (),
                                 score=head.score if head is not None else None,
                                 vector=head.vector if head is not None else None,
                                 summary=head.summary if head is not None else ""))
        out[key] = matches
    return out
