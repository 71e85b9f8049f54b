"""Is an installed version inside an OSV affected entry? ECOSYSTEM range events and explicit versions,
compared with ``packaging`` (PEP 440) as the OSV specification's algorithm describes.
"""

from __future__ import annotations

from functools import lru_cache

from packaging.version import InvalidVersion, Version

__all__ = ["CompiledEntry", "is_affected", "parse_version", "range_affects"]


@lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    """A PEP 440 version, or None when ``text`` is not one (such versions match explicit lists only)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


_ZERO = Version("0")


def range_affects(version: Version, events: tuple[tuple[str, str], ...]) -> bool | None:
    """OSV ``IsAffected`` for one ECOSYSTEM range; None when an event's version cannot be parsed.

    Events are sorted by version (``introduced: 0`` first); walking them, ``introduced <= v`` sets
    affected, ``fixed <= v`` clears it, ``last_affected < v`` clears it.
    """
    # (is not "introduced: 0", version, tie order, kind): "introduced: 0" sorts before every version
    parsed: list[tuple[int, Version, int, str]] = []
    order = {"introduced": 0, "last_affected": 1, "fixed": 2}
    for kind, text in events:
        if kind == "introduced" and text == "0":
            parsed.append((0, _ZERO, 0, kind))
            continue
        v = parse_version(text)
        if v is None:
            return None
        parsed.append((1, v, order[kind], kind))
    parsed.sort()
    affected = False
    for rank, v, _, kind in parsed:
        if kind == "introduced":
            if rank == 0 or version >= v:
                affected = True
        elif kind == "fixed":
            if version >= v:
                affected = False
        elif version > v:  # last_affected
            affected = False
    return affected


def is_affected(
    installed: str,
    ranges: tuple[tuple[tuple[str, str], ...], ...] | list[list[list[str]]],
    versions: tuple[str, ...] | list[str],
) -> bool:
    """True when ``installed`` is listed explicitly or falls inside one of the ECOSYSTEM ranges.

    A range whose events cannot be parsed as PEP 440 versions is not guessed at: the explicit list
    (which OSV exports enumerate for PyPI) still decides.
    """
    if installed in versions:
        return True
    v = parse_version(installed)
    if v is None:
        return False
    for listed in versions:
        lv = parse_version(listed)
        if lv is not None and lv == v:
            return True
    for events in ranges:
        hit = range_affects(v, tuple((str(k), str(t)) for k, t in events))
        if hit:
            return True
    return False


class CompiledEntry:
    """One affected entry prepared once for many lookups: explicit versions as sets, ranges pre-sorted."""

    __slots__ = ("fixed", "ranges", "raw_versions", "upper", "upper_inclusive", "versions")

    def __init__(self, ranges: list[list[list[str]]], versions: list[str]) -> None:
        self.raw_versions = frozenset(versions)
        self.versions = frozenset(v for v in (parse_version(x) for x in versions) if v is not None)
        compiled: list[list[tuple[int, Version, int, str]]] = []
        fixed: list[tuple[Version, str]] = []
        order = {"introduced": 0, "last_affected": 1, "fixed": 2}
        for events in ranges:
            parsed: list[tuple[int, Version, int, str]] = []
            for kind, text in events:
                if kind == "introduced" and text == "0":
                    parsed.append((0, _ZERO, 0, kind))
                    continue
                v = parse_version(text)
                if v is None:
                    parsed = []  # not PEP 440: the explicit list decides (see is_affected)
                    break
                parsed.append((1, v, order[kind], kind))
                if kind == "fixed":
                    fixed.append((v, text))
            if parsed:
                compiled.append(sorted(parsed))
        self.ranges = compiled
        self.fixed = sorted(fixed)
        # Above the last closing event of every range nothing is affected: most installed versions are
        # newer than an advisory's fix, so one comparison answers (None: a range is open-ended).
        self.upper: Version | None = None
        self.upper_inclusive = False
        for walk in compiled:
            last, kind = walk[-1][1], walk[-1][3]
            if kind == "introduced":
                self.upper = None
                break
            if self.upper is None or last > self.upper:
                self.upper, self.upper_inclusive = last, kind == "last_affected"
            elif last == self.upper and kind == "last_affected":
                self.upper_inclusive = True

    def affects(self, installed: str) -> bool:
        """Same answer as ``is_affected(installed, ranges, versions)``."""
        if installed in self.raw_versions:
            return True
        v = parse_version(installed)
        if v is None:
            return False
        if v in self.versions:
            return True
        upper = self.upper
        if upper is not None and (v > upper or (v == upper and not self.upper_inclusive)):
            return False
        for events in self.ranges:
            affected = False
            for rank, ev, _, kind in events:
                if kind == "introduced":
                    if rank == 0 or v >= ev:
                        affected = True
                elif kind == "fixed":
                    if v >= ev:
                        affected = False
                elif v > ev:
                    affected = False
            if affected:
                return True
        return False

    def fixed_after(self, installed: str) -> str | None:
        """The lowest fixed version above ``installed`` (any fixed version when it is not PEP 440)."""
        v = parse_version(installed)
        for fv, text in self.fixed:
            if v is None or fv > v:
                return text
        return None
