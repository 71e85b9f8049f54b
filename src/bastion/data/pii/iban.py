"""IBAN recognizer: per-country exact lengths, mod-97; found in text even when words follow it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bastion.data.pii._checksums import IBAN_LENGTHS, iban_valid_many
from bastion.data.pii._mask import mask_keep_last
from bastion.data.pii.interface import EntityType, Recognizer, fullmatch_mask

__all__ = ["IbanRecognizer"]


def _country_alternation() -> str:
    # One branch per country with its exact length: a following word can never be swallowed.
    by_len: dict[int, list[str]] = {}
    for cc, n in IBAN_LENGTHS.items():
        by_len.setdefault(n, []).append(cc)
    parts = [f"(?:{'|'.join(sorted(ccs))})\\d{{2}}(?: ?[A-Z0-9]){{{n - 4}}}" for n, ccs in sorted(by_len.items())]
    return "|".join(parts)


class IbanRecognizer(Recognizer):
    entity = EntityType.IBAN
    name_hints = (r"iban", r"bank_?acc", r"account_?n", r"\bbic\b", r"\bacct\b")
    priority = 95
    # the lookahead (two capitals and two digits) is implied by every country shape; it only skips text faster
    text_pattern = rf"(?=[A-Z]{{2}}\d\d)(?<![A-Za-z0-9])(?:{_country_alternation()})(?![A-Za-z0-9])"
    text_requires = r"[A-Z][A-Z]\d\d"  # only cells with a country code and check digits are searched
    context_words = ("iban", "bank", "account", "transfer", "konto", "compte")
    base_score = 0.95

    def match_cells(self, values: pd.Series) -> np.ndarray:
        compact = pd.Series([v.replace(" ", "").upper() if isinstance(v, str) else v for v in values.tolist()],
                            dtype=object)
        mask = fullmatch_mask(compact, r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")
        if mask.any():
            idx = np.flatnonzero(mask)
            ok = iban_valid_many(compact.iloc[idx].tolist())
            mask[idx[~ok]] = False
        return mask

    def score_span(self, match: str, before: str, after: str) -> float | None:
        if not iban_valid_many([match])[0]:
            return None
        return 0.99 if self.has_context(before) else self.base_score

    def mask(self, value: str) -> str:
        return value[:2] + mask_keep_last(value[2:], 4)
