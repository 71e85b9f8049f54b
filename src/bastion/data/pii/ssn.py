"""US_SSN recognizer: 3-2-4 digits with issuance rules (no area 000/666/900-999, group 00, serial 0000)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bastion.data.pii._checksums import itin_valid, ssn_valid
from bastion.data.pii._mask import mask_keep_last
from bastion.data.pii.interface import GATE_DIGIT, EntityType, Recognizer, fullmatch_mask

__all__ = ["SsnRecognizer"]

_FORMATTED = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")
_BARE = re.compile(r"\d{9}")
# an ITIN (area 9xx) is told from a lot or batch number only by what the text calls it, in the nearest words
_ITIN_CONTEXT = re.compile(r"\b(?:itin|tin|taxpayer|ssn|ss#|tax ?id|social security)\b[^\n]{0,12}\Z")


class SsnRecognizer(Recognizer):
    entity = EntityType.US_SSN
    name_hints = (r"ssn", r"social_?sec", r"\bsocial\b", r"tax_?id", r"\btin\b", r"itin")
    priority = 85
    # "123-45-6789", "123 45 6789" (one separator throughout) or 9 bare digits
    text_pattern = r"(?<![\w-])(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})(?![\w-])"
    text_gate = GATE_DIGIT
    context_words = ("ssn", "social security", "social sec", "ss#", "ss #", "tax id")
    base_score = 0.85

    def match_cells(self, values: pd.Series) -> np.ndarray:
        formatted = fullmatch_mask(values, _FORMATTED)
        mask = formatted.copy()
        if formatted.any():
            idx = np.flatnonzero(formatted)
            digits = values.iloc[idx].str.replace(r"\D", "", regex=True).tolist()
            ok = np.fromiter((ssn_valid(d) for d in digits), dtype=bool, count=len(digits))
            mask[idx[~ok]] = False
        return mask

    def match_bare(self, values: pd.Series) -> np.ndarray:
        """Bare 9-digit cells that obey the issuance rules (used only with name evidence)."""
        bare = fullmatch_mask(values, _BARE)
        if bare.any():
            idx = np.flatnonzero(bare)
            ok = np.fromiter((ssn_valid(v) for v in values.iloc[idx]), dtype=bool, count=len(idx))
            bare[idx[~ok]] = False
        return bare

    def score_span(self, match: str, before: str, after: str) -> float | None:
        digits = re.sub(r"\D", "", match)
        if not ssn_valid(digits):
            # ITINs (9xx, groups 50-65, 70-88, 90-92, 94-99) identify people as well as SSNs do
            if not (len(match) == 11 and itin_valid(digits)):
                return None
            # 9xx-xx-xxxx is also how lot, batch and order numbers look: an ITIN only when the text says so
            return 0.95 if _ITIN_CONTEXT.search(before[-24:].lower()) else None
        # the nearest words only: "SSN 123-45-6789, BSN 123456782" must not make the BSN an SSN
        context = self.has_context(before[-16:])
        if len(match) == 9 and not context:
            return None  # a bare 9-digit number is only an SSN when the text says so
        return 0.95 if context else self.base_score

    def mask(self, value: str) -> str:
        return mask_keep_last(value, 4)
