"""CREDIT_CARD recognizer: 13-19 digits with a card-network prefix (incl. Mastercard 2221-2720) and Luhn."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bastion.data.pii._checksums import card_brand_ok, luhn_valid_many
from bastion.data.pii._mask import mask_keep_last
from bastion.data.pii.interface import GATE_DIGIT, EntityType, Recognizer, fullmatch_mask

__all__ = ["CreditCardRecognizer"]

_CELL = re.compile(r"\d(?:[ -]?\d){12,18}")


class CreditCardRecognizer(Recognizer):
    entity = EntityType.CREDIT_CARD
    name_hints = (r"card", r"\bcc\b", r"\bpan\b", r"credit", r"debit")
    priority = 90
    text_pattern = r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])"
    text_gate = GATE_DIGIT
    context_words = ("card", "visa", "mastercard", "amex", "credit", "debit", "cc ")
    base_score = 0.9

    def match_cells(self, values: pd.Series) -> np.ndarray:
        mask = fullmatch_mask(values, _CELL)
        if mask.any():
            idx = np.flatnonzero(mask)
            digits = values.iloc[idx].str.replace(r"\D", "", regex=True).tolist()
            ok = luhn_valid_many(digits) & np.fromiter(
                (card_brand_ok(d) for d in digits), dtype=bool, count=len(digits)
            )
            mask[idx[~ok]] = False
        return mask

    def score_span(self, match: str, before: str, after: str) -> float | None:
        digits = re.sub(r"\D", "", match)
        if not card_brand_ok(digits) or not luhn_valid_many([digits])[0]:
            return None
        return 0.98 if self.has_context(before) else self.base_score

    def mask(self, value: str) -> str:
        return mask_keep_last(value, 4)
