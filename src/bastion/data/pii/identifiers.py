"""Identifier columns: MEDICAL_RECORD_NUMBER (MRN-style values or names like mrn/patient_id) and
ID_NUMBER (high-cardinality identifiers of people: customer, member, employee, passport ...)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bastion.data.pii._mask import mask_keep_last
from bastion.data.pii.interface import EntityType, Recognizer, as_mask

__all__ = ["IdNumberRecognizer", "MedicalRecordRecognizer", "identifier_like"]

_ID_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_/.]{3,31}")
_MRN_CELL = re.compile(r"(?:MRN|MR|MED|PT|PAT|HN|EHR)[-_ #:]?\d{5,12}", re.IGNORECASE)
_OBJECT_WORDS = (
    r"order", r"invoice", r"sku", r"product", r"\blot\b", r"batch", r"transaction", r"\btxn", r"item",
    r"ticket", r"session", r"request", r"tracking", r"shipment", r"device", r"serial", r"part", r"model",
)


def identifier_like(values: pd.Series, *, min_unique: float = 0.8) -> np.ndarray:
    """Cells that look like identifiers (no spaces, at least one digit), when the column is mostly unique."""
    mask = (
        as_mask(values.str.fullmatch(_ID_LIKE))
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
    text_pattern = r"(?<![\w-])(?:MRN|MR|PT|EHR)[-_ #:]{0,2}\d{5,12}(?![\w-])"
    text_flags = re.IGNORECASE
    context_words = ("mrn", "medical record", "record", "chart", "patient")
    base_score = 0.9

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return as_mask(values.str.fullmatch(_MRN_CELL))

    def match_named(self, values: pd.Series) -> np.ndarray:
        return np.asarray(self.match_cells(values) | identifier_like(values), dtype=bool)

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
    requires_name_evidence = True
    priority = 20
    base_score = 0.8

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return identifier_like(values)

    def mask(self, value: str) -> str:
        return mask_keep_last(value, 3)
