"""The set of active recognizers: the built-ins, registered `CustomPattern`s and entry-point plugins
from the ``bastion.recognizers`` group (loaded once, failures are configuration errors)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points

from bastion.data.pii.interface import Recognizer
from bastion.errors import ConfigError

__all__ = ["ENTRY_POINT_GROUP", "active_recognizers", "builtin_recognizers", "invalidate", "recognizer_for"]

ENTRY_POINT_GROUP = "bastion.recognizers"
log = logging.getLogger("bastion.data.pii")

_cache: tuple[Recognizer, ...] | None = None
_plugins: tuple[Recognizer, ...] | None = None


def builtin_recognizers() -> tuple[Recognizer, ...]:
    """One instance of every built-in recognizer."""
    from bastion.data.pii.address import StreetAddressRecognizer
    from bastion.data.pii.credit_card import CreditCardRecognizer
    from bastion.data.pii.date_of_birth import DateOfBirthRecognizer
    from bastion.data.pii.email import EmailRecognizer
    from bastion.data.pii.iban import IbanRecognizer
    from bastion.data.pii.identifiers import IdNumberRecognizer, MedicalRecordRecognizer
    from bastion.data.pii.ip_address import IpAddressRecognizer
    from bastion.data.pii.national_ids import NATIONAL_ID_RECOGNIZERS
    from bastion.data.pii.person import PersonRecognizer
    from bastion.data.pii.phone import PhoneRecognizer
    from bastion.data.pii.ssn import SsnRecognizer
    from bastion.data.pii.url import UrlRecognizer
    from bastion.data.pii.zip_code import UsZipRecognizer

    return (
        EmailRecognizer(), UrlRecognizer(), SsnRecognizer(), CreditCardRecognizer(), IbanRecognizer(),
        PhoneRecognizer(), IpAddressRecognizer(), StreetAddressRecognizer(), DateOfBirthRecognizer(),
        UsZipRecognizer(), MedicalRecordRecognizer(), IdNumberRecognizer(), PersonRecognizer(),
        *(cls() for cls in NATIONAL_ID_RECOGNIZERS),
    )  # fmt: skip


def _load_plugins() -> tuple[Recognizer, ...]:
    from bastion.data.pii.custom import CustomPattern, PatternRecognizer

    found: list[Recognizer] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:
            raise ConfigError(
                f"The PII recognizer plugin {ep.name!r} ({ep.value}) failed to import: {e}. "
                "Fix or uninstall the plugin."
            ) from e
        if isinstance(obj, type) and issubclass(obj, Recognizer):
            found.append(obj())
        elif isinstance(obj, Recognizer):
            found.append(obj)
        elif isinstance(obj, CustomPattern):
            found.append(PatternRecognizer(obj))
        else:
            raise ConfigError(
                f"The PII recognizer plugin {ep.name!r} must point at a Recognizer subclass, a Recognizer "
                f"instance or a CustomPattern; got {type(obj).__name__}."
            )
        log.debug("loaded recognizer plugin %s", ep.name)
    return tuple(found)


def active_recognizers(entities: Iterable[str] | None = None) -> tuple[Recognizer, ...]:
    """Built-ins, custom patterns and plugins; restricted to ``entities`` when given."""
    global _cache, _plugins
    if _cache is None:
        from bastion.data.pii.custom import PatternRecognizer, registered_patterns

        if _plugins is None:
            _plugins = _load_plugins()
        _cache = builtin_recognizers() + tuple(PatternRecognizer(p) for p in registered_patterns()) + _plugins
    if entities is None:
        return _cache
    wanted = {str(e) for e in entities}
    known = {r.entity for r in _cache}
    unknown = wanted - known
    if unknown:
        raise ConfigError(
            f"Unknown entity type(s) {sorted(unknown)}; known: {sorted(known)}. "
            "Register user-defined types with register_pattern() or a plugin."
        )
    return tuple(r for r in _cache if r.entity in wanted)


def with_extra(extra: Sequence[Recognizer] | None, entities: Iterable[str] | None) -> tuple[Recognizer, ...]:
    """Active recognizers plus per-call extras (the extras are not registered globally)."""
    base = active_recognizers(None) + tuple(extra or ())
    if entities is None:
        return base
    wanted = {str(e) for e in entities}
    unknown = wanted - {r.entity for r in base}
    if unknown:
        raise ConfigError(f"Unknown entity type(s) {sorted(unknown)}; known: {sorted({r.entity for r in base})}.")
    return tuple(r for r in base if r.entity in wanted)


def recognizer_for(entity: str) -> Recognizer | None:
    """The active recognizer of one entity type, if any."""
    for r in active_recognizers(None):
        if r.entity == entity:
            return r
    return None


def invalidate() -> None:
    """Forget the cached recognizer set (after registering a pattern)."""
    global _cache
    _cache = None
