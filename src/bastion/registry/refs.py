"""References to versions: ``NAME:VERSION``, ``NAME@ALIAS`` or a bare ``NAME`` (latest)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from bastion.errors import RegistryError

__all__ = ["ALIAS_RE", "NAME_RE", "Ref", "check_alias", "check_name", "parse_ref"]

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it uses the safe charset, else raise with what is allowed."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise RegistryError(
            f"Invalid {what} {name!r}: use 1-128 characters from letters, digits, '.', '_' and '-', "
            "starting with a letter or digit."
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias):
        raise RegistryError(
            f"Invalid alias {alias!r}: use 1-64 characters from letters, digits, '_' and '-', starting with a letter."
        )
    return alias


@dataclass(frozen=True)
class Ref:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set, or neither (latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(ref: str) -> Ref:
    """Parse ``NAME:VERSION``, ``NAME@ALIAS`` or ``NAME``."""
    if not isinstance(ref, str):
        raise RegistryError("A reference is required: NAME:VERSION, NAME@ALIAS or NAME.")
    return _parse_ref(ref)


@functools.lru_cache(maxsize=1024)
def _parse_ref(ref: str) -> Ref:
    if not ref.strip():
        raise RegistryError("A reference is required: NAME:VERSION, NAME@ALIAS or NAME.")
    if ref != ref.strip():
        # never trimmed: "churn@production\n" must not quietly become "churn@production"
        raise RegistryError(f"Invalid reference {ref!r}: remove the leading or trailing whitespace.")
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return Ref(check_name(name), alias=check_alias(alias))
    if ":" in ref:
        name, _, ver = ref.rpartition(":")
        if not ver.isdigit() or int(ver) < 1:
            raise RegistryError(f"Invalid reference {ref!r}: the version after ':' must be a whole number >= 1.")
        return Ref(check_name(name), version=int(ver))
    return Ref(check_name(ref))
