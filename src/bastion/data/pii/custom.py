"""User-defined entity types from a regex: `CustomPattern` and `register_pattern`.

For logic beyond a regex, subclass `Recognizer` and publish it in the `bastion.recognizers` entry-point group.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bastion.data.pii.interface import Recognizer, fullmatch_mask
from bastion.errors import ConfigError

__all__ = ["CustomPattern", "PatternRecognizer", "clear_patterns", "register_pattern"]

_ENTITY_RE = re.compile(r"[A-Z][A-Z0-9_]{1,63}")


@dataclass(frozen=True)
class CustomPattern:
    """A user-defined entity type.

    Parameters
    ----------
    entity : upper-case name, e.g. ``"EMPLOYEE_ID"``.
    pattern : regex for one value (a whole cell must match; in text it is searched for).
    name_hints : regexes for column names that speak for this entity.
    context_words : words before a text match that raise its score.
    score : score of a text match without context.
    validator : optional check of a candidate value (e.g. a checksum).
    """

    entity: str
    pattern: str
    name_hints: tuple[str, ...] = ()
    context_words: tuple[str, ...] = ()
    score: float = 0.8
    min_share: float = 0.6
    in_text: bool = True
    validator: Callable[[str], bool] | None = None

    def __post_init__(self) -> None:
        if not _ENTITY_RE.fullmatch(self.entity):
            raise ConfigError(
                f"A custom entity name must be upper case letters, digits and '_' (e.g. 'EMPLOYEE_ID'); "
                f"got {self.entity!r}."
            )
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise ConfigError(f"The pattern of custom entity {self.entity!r} is not a valid regex: {e}.") from e
        if not 0.0 < self.score <= 1.0 or not 0.0 < self.min_share <= 1.0:
            raise ConfigError(
                f"'score' and 'min_share' of custom entity {self.entity!r} must be in (0, 1]; "
                f"got {self.score} and {self.min_share}."
            )


class PatternRecognizer(Recognizer):
    """A `Recognizer` built from a `CustomPattern`."""

    def __init__(self, spec: CustomPattern) -> None:
        self.spec = spec
        self.entity = spec.entity  # type: ignore[misc]
        self.name_hints = spec.name_hints  # type: ignore[misc]
        self.context_words = spec.context_words  # type: ignore[misc]
        self.min_share = spec.min_share  # type: ignore[misc]
        self.base_score = spec.score  # type: ignore[misc]
        self.priority = 100  # type: ignore[misc]  # the user asked for it: wins over built-ins
        self.text_pattern = rf"(?<!\w)(?:{spec.pattern})(?!\w)" if spec.in_text else None  # type: ignore[misc]
        self._cell = re.compile(spec.pattern)

    def match_cells(self, values: pd.Series) -> np.ndarray:
        mask = fullmatch_mask(values, self._cell)
        if self.spec.validator is not None and mask.any():
            idx = np.flatnonzero(mask)
            ok = np.fromiter((bool(self.spec.validator(v)) for v in values.iloc[idx]), dtype=bool, count=len(idx))
            mask[idx[~ok]] = False
        return mask

    def score_span(self, match: str, before: str, after: str) -> float | None:
        if self.spec.validator is not None and not self.spec.validator(match):
            return None
        return min(1.0, self.base_score + 0.1) if self.has_context(before[-32:]) else self.base_score


_PATTERNS: dict[str, CustomPattern] = {}


def register_pattern(spec: CustomPattern) -> None:
    """Add (or replace) a user-defined entity type for every later scan in this process."""
    _PATTERNS[spec.entity] = spec
    from bastion.data.pii._registry import invalidate

    invalidate()


def clear_patterns() -> None:
    """Forget every registered `CustomPattern`."""
    _PATTERNS.clear()
    from bastion.data.pii._registry import invalidate

    invalidate()


def registered_patterns() -> tuple[CustomPattern, ...]:
    return tuple(_PATTERNS.values())
