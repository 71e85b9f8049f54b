"""National identifiers with their checksums, in columns and in text: UK NHS and NINO, Spanish DNI and NIE,
Italian codice fiscale, Polish PESEL, Dutch BSN, French NIR, German Steuer-ID, Brazilian CPF, Indian Aadhaar
and PAN, Australian TFN, Singapore NRIC.

Bare digit runs pass a checksum by chance (1 in 10 or 11); in text they count only next to a word that names
them ("NHS no", "PESEL", "BSN" ...). Shapes with letters or national formatting stand on their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd

from bastion.data.pii import _national as nat
from bastion.data.pii._mask import mask_keep_last
from bastion.data.pii.interface import GATE_CAPS, GATE_DIGIT, Recognizer, fullmatch_mask

__all__ = ["NATIONAL_ID_RECOGNIZERS", "NationalIdRecognizer"]

_SEPS = re.compile(r"[\s.\-/]")


class NationalIdRecognizer(Recognizer):
    """One national identifier: a cell/text shape, a validity check, and words that name it."""

    #: the shape of a cell (full match, separators included)
    cell_shape: ClassVar[str]
    #: True when a match in text must have a naming word before it (bare or phone-like digit runs)
    needs_context: ClassVar[bool] = False
    #: formatted shapes (with the national separators) stand on their own even when bare ones need context
    formatted: ClassVar[str | None] = None
    priority = 80
    min_share = 0.8
    base_score = 0.9
    text_flags: ClassVar[int] = int(re.IGNORECASE)

    def _compact(self, value: str) -> str:
        return _SEPS.sub("", value).upper()

    def match_cells(self, values: pd.Series) -> np.ndarray:
        mask = fullmatch_mask(values, self.cell_shape, re.IGNORECASE)
        if mask.any():
            idx = np.flatnonzero(mask)
            ok = np.fromiter(
                (_CHECKS[self.entity](self._compact(v)) for v in values.iloc[idx]), dtype=bool, count=len(idx)
            )
            mask[idx[~ok]] = False
        return mask

    def score_span(self, match: str, before: str, after: str) -> float | None:
        if not _CHECKS[self.entity](self._compact(match)):
            return None
        context = self.has_context(before[-32:])
        if self.needs_context and not context:
            if self.formatted is None or not re.fullmatch(self.formatted, match, flags=re.IGNORECASE):
                return None
        return 0.95 if context else self.base_score

    def mask(self, value: str) -> str:
        return mask_keep_last(value, 2)


def _text(shape: str) -> str:
    return rf"(?<![\w-])(?:{shape})(?![\w-])"


class UkNhsRecognizer(NationalIdRecognizer):
    entity = "UK_NHS"
    name_hints = (r"\bnhs\b", r"nhs_?(?:no|num|number)")
    cell_shape = r"\d{3}[ -]?\d{3}[ -]?\d{4}"
    needs_context = True  # 3-3-4 digits are a phone shape too
    text_pattern = _text(r"\d{3}[ -]?\d{3}[ -]?\d{4}")
    text_gate = GATE_DIGIT
    context_words = ("nhs",)
    min_share = 0.9


class UkNinoRecognizer(NationalIdRecognizer):
    entity = "UK_NINO"
    name_hints = (r"\bnino\b", r"national_?insurance", r"\bni_?(?:no|num|number)\b")
    cell_shape = r"[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
    text_pattern = _text(r"[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]")
    text_gate = GATE_CAPS
    text_flags = 0
    context_words = ("national insurance", "nino", "ni number", "ni no")


class EsNifRecognizer(NationalIdRecognizer):
    entity = "ES_NIF"
    name_hints = (r"\bdni\b", r"\bnif\b", r"documento")
    cell_shape = r"\d{8}[ -]?[A-Z]"
    text_pattern = _text(r"\d{8}[ -]?[A-Z]")
    text_gate = GATE_DIGIT
    text_flags = 0
    context_words = ("dni", "nif", "documento")


class EsNieRecognizer(NationalIdRecognizer):
    entity = "ES_NIE"
    name_hints = (r"\bnie\b",)
    cell_shape = r"[XYZ][ -]?\d{7}[ -]?[A-Z]"
    text_pattern = _text(r"[XYZ][ -]?\d{7}[ -]?[A-Z]")
    text_gate = GATE_CAPS
    text_flags = 0
    context_words = ("nie", "extranjero")


class ItFiscalCodeRecognizer(NationalIdRecognizer):
    entity = "IT_FISCAL_CODE"
    name_hints = (r"codice_?fiscale", r"\bcf\b", r"fiscal_?code", r"\bcod_?fisc")
    cell_shape = r"[A-Z]{6}[\dA-Z]{2}[A-Z][\dA-Z]{2}[A-Z][\dA-Z]{3}[A-Z]"
    text_pattern = _text(r"[A-Z]{6}[\dLMNPQRSTUV]{2}[ABCDEHLMPRST][\dLMNPQRSTUV]{2}[A-Z][\dLMNPQRSTUV]{3}[A-Z]")
    text_gate = GATE_CAPS
    text_flags = 0
    context_words = ("codice fiscale", "c.f.", "cf")


class PlPeselRecognizer(NationalIdRecognizer):
    entity = "PL_PESEL"
    name_hints = (r"pesel",)
    cell_shape = r"\d{11}"
    needs_context = True
    text_pattern = _text(r"\d{11}")
    text_gate = GATE_DIGIT
    context_words = ("pesel",)


class NlBsnRecognizer(NationalIdRecognizer):
    entity = "NL_BSN"
    name_hints = (r"\bbsn\b", r"burgerservice", r"sofi")
    cell_shape = r"\d{4}[ .]?\d{2}[ .]?\d{3}|\d{3}[ .]?\d{3}[ .]?\d{3}"
    needs_context = True
    text_pattern = _text(r"\d{4}[ .]?\d{2}[ .]?\d{3}|\d{3}[ .]?\d{3}[ .]?\d{3}")
    text_gate = GATE_DIGIT
    context_words = ("bsn", "burgerservicenummer", "sofinummer")
    min_share = 0.9


class FrNirRecognizer(NationalIdRecognizer):
    entity = "FR_NIR"
    name_hints = (r"\bnir\b", r"insee", r"secu", r"s[ée]curit[ée]_?sociale", r"\bnss\b")
    cell_shape = r"[12378] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}"
    text_pattern = _text(r"[12378] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}")
    text_gate = GATE_DIGIT
    context_words = ("sécurité sociale", "securite sociale", "nir", "insee", "sécu")


class DeTaxIdRecognizer(NationalIdRecognizer):
    entity = "DE_TAX_ID"
    name_hints = (r"steuer_?id", r"steuer_?ident", r"\bidnr\b", r"tax_?id_?de", r"identifikationsnummer")
    cell_shape = r"\d{2} ?\d{3} ?\d{3} ?\d{3}"
    needs_context = True
    text_pattern = _text(r"\d{2} ?\d{3} ?\d{3} ?\d{3}")
    text_gate = GATE_DIGIT
    context_words = ("steuer-id", "steuer id", "steuerid", "steueridentifikationsnummer", "idnr", "tax id")


class BrCpfRecognizer(NationalIdRecognizer):
    entity = "BR_CPF"
    name_hints = (r"\bcpf\b",)
    cell_shape = r"\d{3}\.?\d{3}\.?\d{3}-?\d{2}"
    needs_context = True
    formatted = r"\d{3}\.\d{3}\.\d{3}-\d{2}"
    text_pattern = _text(r"\d{3}\.?\d{3}\.?\d{3}-?\d{2}")
    text_gate = GATE_DIGIT
    context_words = ("cpf",)


class InAadhaarRecognizer(NationalIdRecognizer):
    entity = "IN_AADHAAR"
    name_hints = (r"aadhaa?r", r"\buid(?:ai)?\b")
    cell_shape = r"\d{4}[ -]?\d{4}[ -]?\d{4}"
    needs_context = True
    formatted = r"\d{4}[ -]\d{4}[ -]\d{4}"
    text_pattern = _text(r"\d{4}[ -]?\d{4}[ -]?\d{4}")
    text_gate = GATE_DIGIT
    context_words = ("aadhaar", "aadhar", "uid", "uidai")


class InPanRecognizer(NationalIdRecognizer):
    entity = "IN_PAN"
    name_hints = (r"\bpan\b", r"pan_?(?:no|num|number|card)")
    cell_shape = r"[A-Z]{5}\d{4}[A-Z]"
    text_pattern = _text(r"[A-Z]{3}[ABCFGHLJPTK][A-Z]\d{4}[A-Z]")
    text_gate = GATE_CAPS
    text_flags = 0
    context_words = ("pan",)


class AuTfnRecognizer(NationalIdRecognizer):
    entity = "AU_TFN"
    name_hints = (r"\btfn\b", r"tax_?file")
    cell_shape = r"\d{3} ?\d{3} ?\d{2,3}"
    needs_context = True
    text_pattern = _text(r"\d{3} ?\d{3} ?\d{3}")
    text_gate = GATE_DIGIT
    context_words = ("tfn", "tax file")
    min_share = 0.9


class SgNricRecognizer(NationalIdRecognizer):
    entity = "SG_NRIC"
    name_hints = (r"\bnric\b", r"\bfin\b")
    cell_shape = r"[STFGM]\d{7}[A-Z]"
    text_pattern = _text(r"[STFGM]\d{7}[A-Z]")
    text_gate = GATE_CAPS
    text_flags = 0
    context_words = ("nric", "fin")


_CHECKS: dict[str, Callable[[str], bool]] = {
    "UK_NHS": nat.nhs_valid,
    "UK_NINO": nat.nino_valid,
    "ES_NIF": nat.dni_valid,
    "ES_NIE": nat.nie_valid,
    "IT_FISCAL_CODE": nat.fiscal_code_valid,
    "PL_PESEL": nat.pesel_valid,
    "NL_BSN": nat.bsn_valid,
    "FR_NIR": nat.nir_valid,
    "DE_TAX_ID": nat.steuer_id_valid,
    "BR_CPF": nat.cpf_valid,
    "IN_AADHAAR": nat.aadhaar_valid,
    "IN_PAN": nat.pan_valid,
    "AU_TFN": nat.tfn_valid,
    "SG_NRIC": nat.nric_valid,
}

NATIONAL_ID_RECOGNIZERS: tuple[type[NationalIdRecognizer], ...] = (
    UkNhsRecognizer, UkNinoRecognizer, EsNifRecognizer, EsNieRecognizer, ItFiscalCodeRecognizer,
    PlPeselRecognizer, NlBsnRecognizer, FrNirRecognizer, DeTaxIdRecognizer, BrCpfRecognizer,
    InAadhaarRecognizer, InPanRecognizer, AuTfnRecognizer, SgNricRecognizer,
)  # fmt: skip
