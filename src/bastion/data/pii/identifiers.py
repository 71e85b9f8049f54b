"""Identifier columns: MEDICAL_RECORD_NUMBER (MRN-style values or names like mrn/patient_id) and
ID_NUMBER (high-cardinality identifiers of people: customer, member, employee, passport ...)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bastion.data.pii._mask import mask_keep_last
from bastion.data.pii.interface import EntityType, Recognizer, as_mask, fullmatch_mask

__all__ = ["IdNumberRecognizer", "MedicalRecordRecognizer", "identifier_like"]

_ID_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_/.]{3,31}")
_MRN_CELL = re.compile(r"(?:MRN|MR|MED|PT|PAT|HN|EHR|H)[-_ #:]?\d{5,12}", re.IGNORECASE)
_PREFIXED = re.compile(r"[A-Z]{1,3}[-_]?\d{6,12}")
_DIGITS = re.compile(r"(\d+)\D*$")


def sequential(values: pd.Series) -> bool:
    """True for a surrogate key: numbers that rise row by row and fill their range densely (1, 2, 3 ... or
    an ordered sample of them): they say which row it is and nothing about whom."""
    nums = values.str.extract(_DIGITS, expand=False).dropna()
    if len(nums) < 20:
        return False
    n = pd.to_numeric(nums, errors="coerce").dropna()
    if n.empty or n.nunique() < 0.95 * len(n):
        return False
    span = float(n.max() - n.min() + 1)
    rising = float((np.diff(n.to_numpy(dtype=float)) > 0).mean())
    return span <= 10 * len(n) and rising >= 0.95


def _unique(values: pd.Series, mask: np.ndarray) -> float:
    hits = values[mask]
    return float(hits.nunique()) / max(1, len(hits))
_OBJECT_WORDS = (
    r"order", r"invoice", r"sku", r"product", r"\blot\b", r"batch", r"transaction", r"\btxn", r"item",
    r"ticket", r"session", r"request", r"tracking", r"shipment", r"device", r"serial", r"part", r"model",
)


def identifier_like(values: pd.Series, *, min_unique: float = 0.8) -> np.ndarray:
    """Cells that look like identifiers (no spaces, at least one digit), when the column is mostly unique."""
    mask = (
        fullmatch_mask(values, _ID_LIKE)
        & as_mask(values.str.contains(r"\d"))
    )
    if mask.sum() == 0 or values[mask].nunique() < min_unique * mask.sum():
        return np.zeros(len(values), dtype=bool)
    return np.asarray(mask, dtype=bool)


class MedicalRecordRecognizer(Recognizer):
    entity = EntityType.MEDICAL_RECORD_NUMBER
    name_hints = (
        r"\bmrn\b", r"medical_?rec", r"patient_?(?:id|no|num|nr)", r"chart_?(?:id|no|num)", r"health_?rec",
        r"\behr_?id", r"\bnhs_?(?:no|num)", r"hospital_?(?:no|num|id)", r"case_?(?:no|num)",
    )
    negative_name_hints = _OBJECT_WORDS
    priority = 75
    # the lookahead is implied by the prefixes (M, P, E or H); it only skips text faster
    text_pattern = r"(?=[mpeh])(?<![\w-])(?:MRN|MR|PT|EHR|HN|H)[-_ #:]{0,2}\d{5,12}(?![\w-])"
    text_flags = re.IGNORECASE
    context_words = ("mrn", "medical record", "record", "chart", "patient", "hospital n", "hosp", "case")
    base_score = 0.9

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return fullmatch_mask(values, _MRN_CELL)

    def match_named(self, values: pd.Series) -> np.ndarray:
        return np.asarray(self.match_cells(values) | identifier_like(values), dtype=bool)

    def refine(self, values: pd.Series, mask: np.ndarray, *, named: bool) -> tuple[float, tuple[str, ...]]:
        if not mask.any():
            return 1.0, ()
        if sequential(values[mask]):
            return 0.0, ("a sequential surrogate key (its numbers fill their range): not linked to a person",)
        if not named and _unique(values, mask) < 0.9:
            return 0.0, ("record-number shapes that repeat across rows: codes, not identifiers",)
        return 1.0, ()

    def score_span(self, match: str, before: str, after: str) -> float | None:
        head = match.lstrip()[:2].upper()
        if head.startswith("H") and not head.startswith("HN") and not self.has_context(before[-32:]):
            digits = sum(ch.isdigit() for ch in match)
            if digits != 7 and digits != 8:
                return None  # a lone "H" and digits needs a record word unless it has the usual 7-8 digits
        return 0.95 if self.has_context(before[-32:]) else self.base_score

    def mask(self, value: str) -> str:
        return mask_keep_last(value, 3)


class IdNumberRecognizer(Recognizer):
    entity = EntityType.ID_NUMBER
    name_hints = (
        r"(?:customer|member|employee|user|client|subscriber|account|policy|insurance|insured|beneficiary|"
        r"student|person|citizen|voter|national|tax_?payer|driver)_?(?:id|no|num|number|nr)\b",
        r"passport", r"driver_?s?_?licen", r"national_?id", r"\bnino\b", r"licen[cs]e_?(?:no|num|number)",
        r"personal_?(?:id|no|number)",
    )
    negative_name_hints = _OBJECT_WORDS
    priority = 20
    base_score = 0.8
    min_share = 0.9

    def match_cells(self, values: pd.Series) -> np.ndarray:
        # by value: letter-prefixed digit runs (the name may say nothing)
        return fullmatch_mask(values, _PREFIXED)

    def match_named(self, values: pd.Series) -> np.ndarray:
        return identifier_like(values)

    def refine(self, values: pd.Series, mask: np.ndarray, *, named: bool) -> tuple[float, tuple[str, ...]]:
        if not mask.any():
            return 1.0, ()
        if sequential(values[mask]):
            return 0.0, ("a sequential surrogate key (its numbers fill their range): not linked to a person",)
        if named:
            return 1.0, ()
        unique = _unique(values, mask)
        if unique < 0.95:
            return 0.0, (f"letter-prefixed codes, {unique:.0%} distinct: categories or codes, not identifiers",)
        return 0.85, ("letter-prefixed digit runs, unique per row: identifiers",)

    def mask(self, value: str) -> str:
        return mask_keep_last(value, 3)
