"""OSV records (https://ossf.github.io/osv-schema/) parsed into inert, validated advisories.

Only the PyPI ecosystem is kept; names are normalised as PEP 503 does; severity comes from a CVSS v3
vector (base score computed here) or, failing that, the database's own severity label.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bastion.errors import DataError

__all__ = [
    "SEVERITIES",
    "Advisory",
    "AffectedPackage",
    "cvss3_base_score",
    "normalize_name",
    "parse_record",
    "severity_rank",
]

ECOSYSTEM = "PyPI"
#: Ordered from least to most severe; ``unknown`` is ranked by the caller's policy (see ``severity_rank``).
SEVERITIES = ("none", "low", "medium", "high", "critical")
_DB_SEVERITY = {
    "none": "none",
    "low": "low",
    "moderate": "medium",
    "medium": "medium",
    "high": "high",
    "important": "high",
    "critical": "critical",
}
_NAME_RUN = re.compile(r"[-_.]+")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,199}")


@lru_cache(maxsize=65536)
def normalize_name(name: str) -> str:
    """The PEP 503 normalised form of a distribution name (``Scikit_Learn`` -> ``scikit-learn``)."""
    return _NAME_RUN.sub("-", name).lower()


def severity_rank(severity: str, *, unknown_as: str = "critical") -> int:
    """Position of ``severity`` in ``SEVERITIES``; ``unknown`` counts as ``unknown_as`` (fail closed)."""
    if severity not in SEVERITIES:
        severity = unknown_as
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class AffectedPackage:
    """One PyPI package an advisory names: ECOSYSTEM ranges (lists of events) and explicit versions."""

    package: str
    ranges: tuple[tuple[tuple[str, str], ...], ...] = ()
    versions: tuple[str, ...] = ()

    def fixed_versions(self) -> list[str]:
        return [v for r in self.ranges for kind, v in r if kind == "fixed"]


@dataclass(frozen=True)
class Advisory:
    """A parsed OSV record (PyPI parts only)."""

    id: str
    modified: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    published: str | None = None
    withdrawn: str | None = None
    severity: str = "unknown"
    score: float | None = None
    vector: str | None = None
    affected: tuple[AffectedPackage, ...] = ()
    other_ecosystems: tuple[str, ...] = field(default=())


def _str(doc: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    v = doc.get(key)
    if v is None:
        if required:
            raise DataError(f"{where}: the OSV field '{key}' is missing; every OSV record has one.")
        return None
    if not isinstance(v, str):
        raise DataError(f"{where}: the OSV field '{key}' must be a string; got {type(v).__name__}.")
    return v


def _list(doc: dict[str, Any], key: str, where: str) -> list[Any]:
    v = doc.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise DataError(f"{where}: the OSV field '{key}' must be a list; got {type(v).__name__}.")
    return v


# -- CVSS v3.x base score (FIRST specification, section 7.1) -----------------------------------------
_AV = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_AC = {"L": 0.77, "H": 0.44}
_PR_U = {"N": 0.85, "L": 0.62, "H": 0.27}
_PR_C = {"N": 0.85, "L": 0.68, "H": 0.5}
_UI = {"N": 0.85, "R": 0.62}
_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}
_V3 = re.compile(r"CVSS:3\.[01](/[A-Za-z]+:[A-Za-z])+")


def _roundup(x: float) -> float:
    i = round(x * 100000)
    return i / 100000.0 if i % 10000 == 0 else (math.floor(i / 10000) + 1) / 10.0


@lru_cache(maxsize=4096)
def cvss3_base_score(vector: str) -> float | None:
    """The CVSS v3.0/3.1 base score of ``vector``, or None when it is not a complete v3 base vector."""
    if not _V3.fullmatch(vector):
        return None
    metrics = dict(part.split(":", 1) for part in vector.split("/")[1:])
    try:
        scope_changed = metrics["S"] == "C"
        if metrics["S"] not in ("U", "C"):
            return None
        av, ac, ui = _AV[metrics["AV"]], _AC[metrics["AC"]], _UI[metrics["UI"]]
        pr = (_PR_C if scope_changed else _PR_U)[metrics["PR"]]
        c, i, a = _CIA[metrics["C"]], _CIA[metrics["I"]], _CIA[metrics["A"]]
    except KeyError:
        return None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if scope_changed else 6.42 * iss
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    raw = 1.08 * (impact + exploitability) if scope_changed else impact + exploitability
    return _roundup(min(raw, 10.0))


def _score_label(score: float) -> str:
    if score == 0.0:
        return "none"
    if score < 4.0:
        return "low"
    if score < 7.0:
        return "medium"
    if score < 9.0:
        return "high"
    return "critical"


def _severity(doc: dict[str, Any], affected: list[Any], where: str) -> tuple[str, float | None, str | None]:
    vector: str | None = None
    for entry in _list(doc, "severity", where):
        if isinstance(entry, dict) and isinstance(entry.get("score"), str):
            vector = vector or entry["score"]
            score = cvss3_base_score(entry["score"]) if str(entry.get("type", "")).startswith("CVSS_V3") else None
            if score is not None:
                return _score_label(score), score, entry["score"]
    labels = [doc.get("database_specific")] + [a.get("database_specific") for a in affected if isinstance(a, dict)]
    for spec in labels:
        if isinstance(spec, dict) and isinstance(spec.get("severity"), str):
            label = _DB_SEVERITY.get(spec["severity"].strip().lower())
            if label:
                return label, None, vector
    return "unknown", None, vector


def _ranges(entry: dict[str, Any], where: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    out = []
    for r in _list(entry, "ranges", where):
        if not isinstance(r, dict):
            raise DataError(f"{where}: each entry of 'ranges' must be an object.")
        if r.get("type") != "ECOSYSTEM":
            continue  # GIT and SEMVER ranges do not describe PyPI release versions
        events: list[tuple[str, str]] = []
        for ev in _list(r, "events", where):
            if not isinstance(ev, dict) or len(ev) != 1:
                raise DataError(f"{where}: each range event must be an object with exactly one key; got {ev!r}.")
            ((kind, value),) = ev.items()
            if kind not in ("introduced", "fixed", "last_affected", "limit") or not isinstance(value, str):
                raise DataError(
                    f"{where}: unknown range event {ev!r} (expected introduced, fixed, last_affected or limit)."
                )
            if kind != "limit":  # 'limit' applies to GIT ranges only
                events.append((kind, value.strip()))
        if events:
            out.append(tuple(events))
    return tuple(out)


def parse_record(doc: Any, *, where: str = "<record>") -> Advisory:
    """Validate one OSV record; raises ``DataError`` naming the record and field when it is malformed."""
    if not isinstance(doc, dict):
        raise DataError(f"{where}: an OSV record must be a JSON object; got {type(doc).__name__}.")
    rid = _str(doc, "id", where, required=True) or ""
    if not _ID.fullmatch(rid):
        raise DataError(f"{where}: the OSV id {rid!r} is not a valid identifier (letters, digits, '.-_:+').")
    where = f"{where} ({rid})"
    modified = _str(doc, "modified", where, required=True) or ""
    aliases = tuple(str(a) for a in _list(doc, "aliases", where) if isinstance(a, str))
    affected_raw = _list(doc, "affected", where)
    affected: list[AffectedPackage] = []
    others: set[str] = set()
    for entry in affected_raw:
        if not isinstance(entry, dict):
            raise DataError(f"{where}: each entry of 'affected' must be an object.")
        pkg = entry.get("package")
        if not (isinstance(pkg, dict) and isinstance(pkg.get("name"), str) and isinstance(pkg.get("ecosystem"), str)):
            raise DataError(f"{where}: each affected entry needs package.name and package.ecosystem strings.")
        if pkg["ecosystem"] != ECOSYSTEM:
            others.add(pkg["ecosystem"])
            continue
        versions = tuple(v.strip() for v in _list(entry, "versions", where) if isinstance(v, str))
        affected.append(AffectedPackage(normalize_name(pkg["name"].strip()), _ranges(entry, where), versions))
    severity, score, vector = _severity(doc, affected_raw, where)
    return Advisory(
        id=rid,
        modified=modified,
        aliases=aliases,
        summary=(_str(doc, "summary", where) or "")[:500],
        published=_str(doc, "published", where),
        withdrawn=_str(doc, "withdrawn", where),
        severity=severity,
        score=score,
        vector=vector,
        affected=tuple(affected),
        other_ecosystems=tuple(sorted(others)),
    )
