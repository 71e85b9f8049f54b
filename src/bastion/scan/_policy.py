"""Allowlist and critical-name policy for globals referenced by pickles.

The allowlist is data (``allowlists/*.txt``, one ``module.qualname`` a line); the critical list
(``critical.txt``) names globals that give code execution. Nothing named here is ever imported.
"""

from __future__ import annotations

import _compat_pickle
import functools
import os

__all__ = [
    "NOTEWORTHY",
    "allowlist",
    "critical_match",
    "is_allowed",
    "normalize",
]

#: Dunder attributes that turn an attribute chain into an escape hatch.
_DANGEROUS_DUNDERS = frozenset(
    {
        "__globals__", "__builtins__", "__subclasses__", "__import__", "__code__", "__getattribute__",
        "__getattr__", "__reduce__", "__reduce_ex__", "__class__", "__bases__", "__base__", "__mro__",
        "__dict__", "__closure__", "__func__", "__self__", "__call__", "__init__", "__new__",
        "__setattr__", "__delattr__", "__loader__", "__spec__", "__subclasshook__", "__init_subclass__",
    }
)

#: Allowed globals worth an INFO line: they are safe to load but deserve a reviewer's glance.
NOTEWORTHY: dict[str, str] = {
    "functools.partial": "a partial function is stored; its target is checked separately",
    "collections.defaultdict": "a defaultdict calls its factory on missing keys; the factory is checked",
    "builtins.type": "a class object is built at load time",
}


# The data files sit next to this module (package data). Read with plain file I/O rather than
# importlib.resources, whose import (typing, inspect, tempfile, ...) costs more than a small scan.
_HERE = os.path.dirname(os.path.abspath(__file__))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _read_lines(text: str) -> list[str]:
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


@functools.cache
def allowlist() -> frozenset[str]:
    """Every allowed ``module.qualname`` from the packaged allowlist files."""
    entries: set[str] = set()
    folder = os.path.join(_HERE, "allowlists")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".txt"):
            entries.update(_read_lines(_read(os.path.join(folder, name))))
    return frozenset(entries)


@functools.cache
def _critical_entries() -> frozenset[str]:
    return frozenset(_read_lines(_read(os.path.join(_HERE, "critical.txt"))))


def normalize(module: str, name: str) -> tuple[str, str]:
    """Apply the Python 2 -> 3 name mapping the unpickler applies (``__builtin__`` -> ``builtins``)."""
    key = (module, name)
    if key in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[key]
    if module in _compat_pickle.IMPORT_MAPPING:
        return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


def _prefix_hit(value: str, entries: frozenset[str]) -> str | None:
    parts = value.split(".")
    for i in range(1, len(parts) + 1):
        candidate = ".".join(parts[:i])
        if candidate in entries:
            return candidate
    return None


def critical_match(module: str, name: str) -> str | None:
    """The critical-list entry (or dunder) that ``module.name`` hits, or None."""
    entries = _critical_entries()
    # as written first, then normalized: an ordered pair, so the reported match never depends on hash seeds
    for mod, nm in dict.fromkeys(((module, name), normalize(module, name))):
        hit = _prefix_hit(mod, entries) or _prefix_hit(f"{mod}.{nm}", entries)
        if hit is not None:
            return hit
        for part in nm.split("."):
            if part in _DANGEROUS_DUNDERS:
                return part
    return None


def is_allowed(module: str, name: str) -> bool:
    """True when the normalized ``module.name`` is on the allowlist exactly."""
    mod, nm = normalize(module, name)
    return f"{mod}.{nm}" in allowlist()
