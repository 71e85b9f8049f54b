"""PHONE recognizer: international and national formats, validated with `phonenumbers`.

A bare run of digits is only a phone number when the column name or the text around it says so.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers

from bastion.data.pii._mask import mask_keep_last
from bastion.data.pii.interface import EntityType, Recognizer, fullmatch_mask

__all__ = ["PhoneRecognizer"]
_EXTENSION = re.compile(r" ?(?:x|ext\.?) ?(?=\d)")

# Regions tried, in order, for numbers written without a country code.
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "NL", "IT", "ES")

_CELL = re.compile(r"(?:\+|00)?[\d(][\d ().\-/]{5,22}\d(?: ?(?:x|ext\.?) ?\d{1,5})?", re.IGNORECASE)
_HAS_FORMAT = re.compile(r"^\+|^00|[ ().\-/]")
# dates and dotted quads share the phone alphabet; they are never phone numbers
_NOT_PHONE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}|\d{1,3}(?:\.\d{1,3}){3}|\d{3}-\d{2}-\d{4}")


@lru_cache(maxsize=65536)
def _parse_valid(candidate: str) -> bool:
    text = candidate.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    regions: tuple[str | None, ...] = (None,) if text.startswith("+") else DEFAULT_REGIONS
    for region in regions:
        try:
            num = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return True
    return False


class PhoneRecognizer(Recognizer):
    entity = EntityType.PHONE
    name_hints = (r"phone", r"mobile", r"\bcell", r"\btel", r"\bfax\b", r"contact_?n", r"handy")
    negative_name_hints = (r"order", r"invoice", r"sku", r"\blot\b", r"serial", r"batch", r"tracking")
    priority = 60
    # the lookahead (a digit, "+" or "(") is implied by both shapes; it only skips text faster
    text_pattern = (
        r"(?=[\d+(])"
        r"(?:(?<![\w+/.-])(?:\+\d{1,3}[ .-]?|00\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?\d{1,8}(?:[ .-]\d{1,8}){0,5}|"
        r"\d{1,8}(?:[ .-]\d{1,8}){1,5})(?: ?(?:x|ext\.?) ?\d{1,5})?(?![\w-]|\.\d)"
        r"|(?<![\w+/.-])\+?\d{8,14}(?![\w-]|\.\d))"
    )
    context_words = ("phone", "call", "tel", "mobile", "cell", "reach", "contact", "text", "fax", "ring")
    base_score = 0.75

    def match_cells(self, values: pd.Series) -> np.ndarray:
        mask = fullmatch_mask(values, _CELL)
        mask &= ~fullmatch_mask(values, _NOT_PHONE)
        if mask.any():
            idx = np.flatnonzero(mask)
            ok = np.fromiter((_parse_valid(v) for v in values.iloc[idx]), dtype=bool, count=len(idx))
            mask[idx[~ok]] = False
        return mask

    def refine(self, values: pd.Series, mask: np.ndarray, *, named: bool) -> tuple[float, tuple[str, ...]]:
        if named or not mask.any():
            return 1.0, ()
        formatted = values[mask].str.contains(_HAS_FORMAT).mean()
        if formatted < 0.5:
            return 0.0, ("digit strings parse as phone numbers but carry no phone formatting or name",)
        return 1.0, ()

    def score_span(self, match: str, before: str, after: str) -> float | None:
        digits = sum(map(str.isdigit, _EXTENSION.split(match)[0]))
        if digits < 7 or digits > 15:
            return None
        context = self.has_context(before)
        formatted = bool(_HAS_FORMAT.search(match))
        if not formatted and not context:
            return None
        # dates and version-like dotted numbers are not phones
        if _NOT_PHONE.fullmatch(match):
            return None
        return 0.9 if context else self.base_score

    def verify_span(self, match: str) -> bool:
        # parsing is the costly part: the scanner skips it for candidates an ID of higher priority also found
        return _parse_valid(match)

    def mask(self, value: str) -> str:
        return mask_keep_last(value, 2)
