"""The one reader of ``bastion-policy.yaml``: each stage registers the top-level sections it owns.

The file is read and parsed once per change; unknown sections are errors and every present section is
validated by its owner, so a section one stage does not know can never break another stage's reading.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bastion.errors import ConfigError

__all__ = [
    "POLICY_FILE",
    "PolicyDocument",
    "Section",
    "document_from_mapping",
    "find_policy_file",
    "load_yaml",
    "parse_text",
    "read_policy_file",
    "register_section",
    "registered_sections",
]

POLICY_FILE = "bastion-policy.yaml"

# Built-in owners are imported directly (no entry points, no reinstall); importing one registers its sections.
_BUILTIN_OWNERS = (
    "bastion.gates.policy",
    "bastion.data.protect.policy",
    "bastion.monitor.config",
)

Validator = Callable[["PolicyDocument"], object]


@dataclass(frozen=True)
class Section:
    """Top-level keys one stage owns, and the function that validates them (raises ``ConfigError``)."""

    owner: str
    keys: frozenset[str]
    validate: Validator


@dataclass(frozen=True)
class PolicyDocument:
    """A parsed policy file: its top-level mapping, the YAML line of each node, where it came from."""

    data: Mapping[str, Any]
    source: str = "<policy>"
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict)
    # What each owner's validator returned (its typed section), filled once when the document is built.
    parsed: dict[str, object] = field(default_factory=dict, compare=False)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def subset(self, keys: frozenset[str] | set[str]) -> dict[str, Any]:
        """The top-level items whose key is in ``keys`` (what one owner validates)."""
        return {k: v for k, v in self.data.items() if k in keys}

    def line_of(self, *path: str | int) -> int | None:
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as booleans, which turns the
    documented ``rollback: {on: [...]}`` key into ``True`` (and a country code ``NO`` into ``False``)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF")
)



def load_yaml(text: str) -> Any:
    """Parse YAML the way the policy file is parsed (safe, YAML 1.2 booleans); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


_sections: dict[str, Section] = {}
_lock = threading.Lock()
_cache: dict[str, tuple[str, PolicyDocument]] = {}
_builtins_loaded = False


def register_section(owner: str, keys: set[str] | frozenset[str] | tuple[str, ...], validate: Validator) -> None:
    """Declare that ``owner`` owns the top-level ``keys`` of the policy file and validates them.

    Registering a key another owner already holds is a programming error (``ConfigError``); registering the
    same owner again replaces its entry (module reloads in tests).
    """
    ks = frozenset(keys)
    with _lock:
        for other in _sections.values():
            if other.owner != owner and ks & other.keys:
                raise ConfigError(
                    f"Policy section(s) {sorted(ks & other.keys)} are already owned by '{other.owner}'; "
                    f"'{owner}' cannot register them too."
                )
        _sections[owner] = Section(owner, ks, validate)
        _cache.clear()


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    for mod in _BUILTIN_OWNERS:
        importlib.import_module(mod)
    _builtins_loaded = True


def registered_sections() -> dict[str, Section]:
    """Every registered owner and its section (built-in owners included)."""
    _load_builtins()
    with _lock:
        return dict(_sections)


def _line_map(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            _line_map(v, (*path, key), out)
            out[(*path, key)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


#: Most values a policy may hold once aliases are expanded: YAML aliases nest ("billion laughs"), so a
#: few hundred bytes can stand for 10^9 values that validation and the digest would walk one by one.
MAX_POLICY_VALUES = 100_000


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int]) -> int:
    """Values ``node`` stands for with every alias expanded (memoised: linear in the file's size)."""
    key = id(node)
    if key in active:
        raise ConfigError("an alias refers to a node that contains it (a recursive structure)")
    if key in memo:
        return memo[key]
    active.add(key)
    n = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            n += _expanded_size(k, memo, active) + _expanded_size(v, memo, active)
            if n > MAX_POLICY_VALUES:
                break
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            n += _expanded_size(item, memo, active)
            if n > MAX_POLICY_VALUES:
                break
    active.discard(key)
    memo[key] = n
    return n


def parse_text(text: str, source: str = "<policy>") -> PolicyDocument:
    """Parse policy YAML text into a document (top level checked, sections validated)."""
    lines: dict[tuple[str | int, ...], int] = {}
    try:
        node = yaml.compose(text, Loader=_Loader)
        if node is not None:
            try:
                size = _expanded_size(node, {}, set())
            except ConfigError as e:
                raise ConfigError(f"{source}: not a valid policy: {e}.") from None
            if size > MAX_POLICY_VALUES:
                raise ConfigError(
                    f"{source}: the policy expands to more than {MAX_POLICY_VALUES} values (nested YAML aliases?); "
                    "write it out plainly."
                )
        data = load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{source}: {where}not valid YAML ({getattr(e, 'problem', e)}).") from e
    except RecursionError:
        raise ConfigError(f"{source}: the policy is nested too deeply to be a policy file.") from None
    if node is not None:
        _line_map(node, (), lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a policy file must be a YAML mapping of sections; got {type(data).__name__}.")
    return document_from_mapping(data, source=source, lines=lines)


def document_from_mapping(
    data: Mapping[str, Any], *, source: str = "<policy>", lines: Mapping[tuple[str | int, ...], int] | None = None
) -> PolicyDocument:
    """Check the top-level keys of ``data`` against the registered sections and let each owner validate."""
    doc = PolicyDocument(dict(data), source, dict(lines or {}))
    sections = registered_sections()
    known = {k: s for s in sections.values() for k in s.keys}
    for key in data:
        if not isinstance(key, str) or key not in known:
            line = doc.line_of(str(key))
            where = f"line {line}, " if line else ""
            raise ConfigError(
                f"{source}: {where}'{key}': unknown section. Known sections: {', '.join(sorted(known))}."
            )
    for section in sections.values():
        if section.keys & set(data):
            doc.parsed[section.owner] = section.validate(doc)
    return doc


def read_policy_file(path: str | Path) -> PolicyDocument:
    """Read, parse and validate the policy file at ``path``.

    The bytes are read on every call (cheap) and the parsed document is reused while they are unchanged,
    so a policy edit is seen at once and an unchanged file is parsed once.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"Policy file {p} does not exist. Create it (see docs/gates.md) or pass --policy.") from e
    except OSError as e:
        raise ConfigError(f"Policy file {p} cannot be read: {e.strerror}.") from e
    stamp = hashlib.sha256(raw).hexdigest()
    key = str(p)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"Policy file {p} cannot be read as UTF-8 text: {e}.") from e
    doc = parse_text(text, str(p))
    with _lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = (stamp, doc)
    return doc


def find_policy_file(root: str | Path) -> Path | None:
    """``ROOT/bastion-policy.yaml`` when it exists."""
    path = Path(root) / POLICY_FILE
    return path if path.is_file() else None
