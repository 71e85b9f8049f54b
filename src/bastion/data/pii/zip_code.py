"""US_ZIP recognizer (a quasi-identifier): ZIP and ZIP+4. Five bare digits are a ZIP only when the name,
the ZIP+4 form, or kept leading zeros say so."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bastion.data.pii.interface import GATE_DIGIT, EntityType, Recognizer, fullmatch_mask

__all__ = ["UsZipRecognizer"]

_CELL = re.compile(r"\d{5}(?:-\d{4})?")


class UsZipRecognizer(Recognizer):
    entity = EntityType.US_ZIP
    name_hints = (r"\bzip", r"postal", r"post_?code", r"postcode", r"\bplz\b")
    negative_name_hints = (r"order", r"sku", r"\blot\b", r"count", r"qty", r"amount", r"price", r"\bid\b")
    priority = 30
    text_pattern = r"(?<![\w-])\d{5}(?:-\d{4})?(?![\w-])"
    text_gate = GATE_DIGIT
    context_words = ("zip", "postal", "postcode", "zip code")
    base_score = 0.8

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return fullmatch_mask(values, _CELL)

    def refine(self, values: pd.Series, mask: np.ndarray, *, named: bool) -> tuple[float, tuple[str, ...]]:
        if named or not mask.any():
            return 1.0, ()
        hits = values[mask]
        distinct = hits.nunique()
        if len(hits) >= 100 and distinct < 50:
            return 0.0, (f"only {distinct} distinct five-digit values: a category, not ZIP codes",)
        if hits.str.len().eq(10).mean() >= 0.3:
            return 1.0, ("ZIP+4 form",)
        first = hits.str[0]
        if first.eq("0").any() and first.nunique() >= 6:
            return 0.8, ("five-digit strings with kept leading zeros, spread over regions",)
        return 0.0, ("five-digit numbers without a ZIP name or ZIP form are not reported",)

    def score_span(self, match: str, before: str, after: str) -> float | None:
        tail = before[-12:]
        if self.has_context(before[-24:]) or re.search(r"\b[A-Z]{2},? $", tail):
            return 0.85
        return None

    def mask(self, value: str) -> str:
        if not _CELL.fullmatch(value):
            return re.sub(r"[^\W_]", "*", value)
        return value[:3] + re.sub(r"\d", "*", value[3:])
