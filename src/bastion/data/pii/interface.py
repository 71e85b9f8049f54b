"""The PII recognizer seam: the `Recognizer` base class and the frozen result types.

Built-in recognizers live one per module beside this file; plugins subclass `Recognizer`.
"""

from __future__ import annotations

import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

__all__ = [
    "GATE_ALPHA",
    "GATE_CAPS",
    "GATE_DIGIT",
    "SCHEMA_VERSION",
    "ColumnFinding",
    "EntityType",
    "Recognizer",
    "RegexRecognizer",
    "Span",
    "TableScanReport",
    "as_mask",
    "fullmatch_mask",
]

SCHEMA_VERSION = 1
_CONTEXT = 48  # characters of text either side of a candidate that context rules look at

#: `Recognizer.text_gate` values shared by the built-ins: a match starts at a digit (or an ASCII letter) that
#: does not follow a word character or a hyphen
GATE_DIGIT = r"(?<![\w-])(?=\d)"
GATE_ALPHA = r"(?<![\w-])(?=[A-Za-z])"
#: a capital followed by a capital, a digit, a space or a hyphen (national IDs written in capitals and digits)
GATE_CAPS = r"(?<![\w-])(?=[A-Z][A-Z\d -])"


def as_mask(values: pd.Series | np.ndarray) -> np.ndarray:
    """A writable boolean numpy mask from a pandas result (NA counts as no match)."""
    if isinstance(values, pd.Series):
        values = values.fillna(False).to_numpy(dtype=bool)
    return np.array(values, dtype=bool)


def fullmatch_mask(values: pd.Series, pattern: str | re.Pattern[str], flags: int = 0) -> np.ndarray:
    """Cells of ``values`` that ``pattern`` matches in full, as a boolean mask (non-str cells never match).

    Same answer as ``values.str.fullmatch(pattern)``, faster: cells whose length no match can have are
    skipped before the regex runs, and there is no per-call pandas overhead.
    """
    compiled, lo, hi = _with_width(pattern, flags)
    fm = compiled.fullmatch
    return np.fromiter(
        (isinstance(v, str) and lo <= len(v) <= hi and fm(v) is not None for v in values.tolist()),
        dtype=bool,
        count=len(values),
    )


_WIDTHS: dict[tuple[str, int], tuple[re.Pattern[str], int, int]] = {}


def _with_width(pattern: str | re.Pattern[str], flags: int) -> tuple[re.Pattern[str], int, int]:
    if isinstance(pattern, re.Pattern):
        flags |= pattern.flags
        pattern = pattern.pattern
    key = (pattern, flags)
    got = _WIDTHS.get(key)
    if got is None:
        compiled = re.compile(pattern, flags)
        lo, hi = 0, sys.maxsize
        try:  # the shortest and longest text a match can span (re's own parser; unknown -> no bound)
            import re._parser as sre_parse

            lo, hi = sre_parse.parse(pattern, flags).getwidth()
        except Exception:  # a private module: any failure only loses the shortcut
            lo, hi = 0, sys.maxsize
        if len(_WIDTHS) > 4096:
            _WIDTHS.clear()
        got = _WIDTHS[key] = (compiled, int(lo), int(hi))
    return got


class EntityType(StrEnum):
    """Built-in entity types. User-defined types are plain upper-case strings."""

    PERSON = "PERSON"
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    US_SSN = "US_SSN"
    CREDIT_CARD = "CREDIT_CARD"
    IBAN = "IBAN"
    IP_ADDRESS = "IP_ADDRESS"
    STREET_ADDRESS = "STREET_ADDRESS"
    DATE_OF_BIRTH = "DATE_OF_BIRTH"
    US_ZIP = "US_ZIP"
    MEDICAL_RECORD_NUMBER = "MEDICAL_RECORD_NUMBER"
    ID_NUMBER = "ID_NUMBER"
    URL = "URL"


@dataclass(frozen=True, slots=True)
class Span:
    """One entity found in a text: ``text[start:end]`` is the value; ``score`` in (0, 1]."""

    entity: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "start": self.start, "end": self.end, "score": round(self.score, 3)}


@dataclass(frozen=True, slots=True)
class ColumnFinding:
    """What one column holds, and why Bastion thinks so.

    ``kind`` is ``"column"`` (the whole column is one entity type), ``"text"`` (free text with
    entity spans inside; ``entity`` is None and ``spans_found`` counts spans per type) or
    ``"none"``. ``share`` is the share of non-empty sampled cells that matched (for text: the
    share of cells with at least one span). ``masked_examples`` never contain a raw value.
    """

    column: str
    entity: str | None
    kind: Literal["column", "text", "none"]
    confidence: float
    share: float
    evidence: tuple[str, ...] = ()
    masked_examples: tuple[str, ...] = ()
    spans_found: dict[str, int] = field(default_factory=dict)

    @property
    def is_pii(self) -> bool:
        """True for an entity column, or a text column with at least one span."""
        return self.kind == "column" or (self.kind == "text" and sum(self.spans_found.values()) > 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "entity": self.entity,
            "kind": self.kind,
            "confidence": round(self.confidence, 3),
            "share": round(self.share, 4),
            "evidence": list(self.evidence),
            "masked_examples": list(self.masked_examples),
            "spans_found": dict(sorted(self.spans_found.items())),
        }


@dataclass(frozen=True, slots=True)
class TableScanReport:
    """The result of `scan_table`: one finding per scanned column."""

    source: str
    columns: tuple[ColumnFinding, ...]
    rows_scanned: int
    sample_rows: int
    text_full: bool = True

    def pii_columns(self) -> tuple[ColumnFinding, ...]:
        """The findings that hold PII (entity columns and text columns with spans)."""
        return tuple(c for c in self.columns if c.is_pii)

    def finding(self, column: str) -> ColumnFinding:
        """The finding for one column by name (KeyError if the column was not scanned)."""
        for c in self.columns:
            if c.column == column:
                return c
        raise KeyError(column)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "pii_scan",
            "source": self.source,
            "rows_scanned": self.rows_scanned,
            "sample_rows": self.sample_rows,
            "text_full": self.text_full,
            "columns": [c.to_dict() for c in self.columns],
            "pii_columns": [c.column for c in self.pii_columns()],
        }


class Recognizer(ABC):
    """One entity type, recognised in whole columns and (optionally) inside free text.

    Column level: `match_cells` gets the sampled, stripped, non-empty cells of one column as a
    string Series and returns a boolean mask (work vectorised over the Series where possible).
    `refine` may weigh the column as a whole (value distribution) and veto or explain.
    Text level: ``text_pattern`` is a regex run over large chunks of joined text; each match is
    passed to `score_span` with the text before and after it, which returns a score or None.
    """

    entity: ClassVar[str]
    #: regexes searched in the normalised column name (lower case, words joined by "_")
    name_hints: ClassVar[tuple[str, ...]] = ()
    #: names that speak against this entity even when values match (e.g. "version" for IPs)
    negative_name_hints: ClassVar[tuple[str, ...]] = ()
    #: True when values alone never suffice (e.g. generic identifiers)
    requires_name_evidence: ClassVar[bool] = False
    #: share of matching cells needed without name evidence (with it: half of this)
    min_share: ClassVar[float] = 0.6
    #: breaks ties between column verdicts and overlapping spans (checksummed types rank high)
    priority: ClassVar[int] = 50
    text_pattern: ClassVar[str | None] = None
    text_flags: ClassVar[int] = 0
    #: a zero-width regex that holds where every match of ``text_pattern`` starts (e.g. `GATE_DIGIT`).
    #: Recognizers that declare the same gate (and keep the default `find_in_text`) are searched in one
    #: pass over the text instead of one pass each; the matches are the same. Leave None when unsure.
    text_gate: ClassVar[str | None] = None
    #: a regex that finds something in every cell where ``text_pattern`` matches (e-mail: ``@``). The scanner
    #: then runs ``text_pattern`` only over the cells where this finds something, and the matches are the same,
    #: provided that neither pattern crosses a line break (cells are joined by ``"\n"``) and the lookarounds of
    #: ``text_pattern`` decide on the line break itself at a cell's edge (``(?![\w-])``, not ``(?!\n\d)``).
    #: Start it with a character class or a literal so the engine can skip ahead. Leave None when unsure.
    text_requires: ClassVar[str | None] = None
    #: words before a text match that raise its score
    context_words: ClassVar[tuple[str, ...]] = ()
    base_score: ClassVar[float] = 0.8

    @abstractmethod
    def match_cells(self, values: pd.Series) -> np.ndarray:
        """Boolean mask over ``values`` (str Series, stripped, non-empty): cells that are this entity.

        Each cell is judged on its own (column-wide judgement belongs in `refine`): the scanner may pass
        only the distinct values of a column and spread the mask over its cells.
        """

    def match_named(self, values: pd.Series) -> np.ndarray:
        """Like `match_cells`, when the column name already says this entity (may accept looser forms)."""
        return self.match_cells(values)

    def refine(self, values: pd.Series, mask: np.ndarray, *, named: bool) -> tuple[float, tuple[str, ...]]:
        """Column-wide evidence: a factor in [0, 1] applied to the verdict, and why."""
        return 1.0, ()

    def score_span(self, match: str, before: str, after: str) -> float | None:
        """Score of a text candidate (None rejects it). ``before``/``after``: nearby text."""
        return self.base_score

    def find_in_text(self, text: str) -> Iterator[tuple[int, int, float]]:
        """``(start, end, score)`` of every entity in ``text`` (a chunk of many joined cells).

        The default runs ``text_pattern`` over the whole chunk and scores each candidate with
        `score_span`; recognizers with their own logic (names) override this.
        """
        if self.text_pattern is None:
            return
        yield from self.scored(text, (m.span() for m in self._compiled_text().finditer(text)))

    def scored(
        self, text: str, spans: Iterable[tuple[int, int]], *, verify: bool = True
    ) -> Iterator[tuple[int, int, float]]:
        """`find_in_text` for candidate ``spans`` of ``text_pattern`` already found (by a shared pass).

        With ``verify=False`` `verify_span` is left to the caller.
        """
        for start, end in spans:
            match = text[start:end]
            score = self.score_span(match, text[max(0, start - _CONTEXT) : start], text[end : end + _CONTEXT])
            if score is not None and (not verify or self.verify_span(match)):
                yield start, end, score

    def verify_span(self, match: str) -> bool:
        """The costly last check of a text candidate that `score_span` accepted (e.g. parsing a phone number).

        `find_in_text` applies it to every candidate. The scanner skips it for a candidate that could not be
        kept anyway: one whose exact span a recognizer of higher priority also found.
        """
        return True

    def _compiled_requires(self) -> re.Pattern[str] | None:
        if self.text_requires is None:
            return None
        cached = self.__dict__.get("_requires_re")
        if cached is None or cached[0] is not self.text_requires:
            cached = (self.text_requires, re.compile(self.text_requires))
            self.__dict__["_requires_re"] = cached
        return cached[1]

    def _compiled_text(self) -> re.Pattern[str]:
        cached = self.__dict__.get("_text_re")
        if cached is None:
            cached = re.compile(self.text_pattern or "(?!)", self.text_flags)
            self.__dict__["_text_re"] = cached
        return cached

    def mask(self, value: str) -> str:
        """A masked rendering of ``value`` for reports (never the value itself)."""
        from bastion.data.pii._mask import mask_generic

        return mask_generic(value)

    def has_context(self, before: str) -> bool:
        """True when one of ``context_words`` occurs in ``before`` (lower-cased text before a match)."""
        words = self.context_words
        if not words:
            return False
        cached = self.__dict__.get("_context_re")
        if cached is None or cached[0] is not words:
            # one search for all words instead of one substring test per word (same answer)
            cached = (words, re.compile("|".join(re.escape(w) for w in words)))
            self.__dict__["_context_re"] = cached
        return cached[1].search(before.lower()) is not None


class RegexRecognizer(Recognizer):
    """A recognizer from one cell regex (full match) plus an optional per-candidate check.

    Subclasses set ``cell_pattern`` and override `validate` (called on regex candidates only).
    """

    cell_pattern: ClassVar[str]
    cell_flags: ClassVar[int] = 0

    def validate(self, value: str) -> bool:
        """Checksum or rule check for one candidate value (regex already matched)."""
        return True

    def validate_many(self, values: list[str]) -> np.ndarray:
        """Vectorised `validate`; override when a checksum can run over arrays."""
        return np.fromiter((self.validate(v) for v in values), dtype=bool, count=len(values))

    def match_cells(self, values: pd.Series) -> np.ndarray:
        mask = fullmatch_mask(values, self.cell_pattern, self.cell_flags)
        if mask.any():
            idx = np.flatnonzero(mask)
            ok = self.validate_many(values.iloc[idx].tolist())
            mask[idx[~ok]] = False
        return mask
