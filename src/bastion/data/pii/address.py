"""STREET_ADDRESS recognizer: US/UK street lines (number + name + suffix), German and French forms,
optionally followed by city, state/postcode."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bastion.data.pii.interface import EntityType, Recognizer, as_mask

__all__ = ["StreetAddressRecognizer"]

_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
    r"Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Close|Crescent|Grove|Gardens|Row|Mews|Hill)"
)
_CAP = r"[A-ZÀ-Þ][a-zß-ÿ'’]+"
_UNIT = r"(?:,? (?:Apt|Apartment|Suite|Ste|Unit|Flat|#) ?#?[\w-]{1,6})?"
_US_TAIL = rf"(?:, {_CAP}(?: {_CAP}){{0,2}}(?:, [A-Z]{{2}}(?: \d{{5}}(?:-\d{{4}})?)?)?)?"
_UK_TAIL = r"(?:,? [A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2})?"
_US = (
    rf"\d{{1,6}}[A-Z]? (?:(?:[NSEW]|North|South|East|West)\.? )?(?:{_CAP} |\d{{1,3}}(?:st|nd|rd|th) ){{1,3}}"
    rf"{_SUFFIX}\.?{_UNIT}{_US_TAIL}{_UK_TAIL}"
)
_DE = (
    r"[A-ZÄÖÜ][a-zäöüß\-]+(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer)"
    r" \d{1,4}[a-z]?(?:, \d{5} [A-ZÄÖÜ][a-zäöüß]+(?:[ -][A-ZÄÖÜ][a-zäöüß]+)?)?"
)
_FR = (
    r"\d{1,4}(?: bis| ter)?,? (?:rue|avenue|av\.|boulevard|bd|place|impasse|allée|chemin|quai|cours|route)"
    r"(?: (?:de la |de l'|du |des |de |d'|la |le |les )?[A-ZÀ-Þ][a-zà-ÿ'’]+(?:-[A-ZÀ-Þ]?[a-zà-ÿ'’]+)*){1,4}"
    r"(?:, \d{5} [A-ZÀ-Þ][a-zà-ÿ\-]+(?: [A-ZÀ-Þ][a-zà-ÿ\-]+)?)?"
)
_ANY = rf"(?:{_US}|{_DE}|{_FR})"


class StreetAddressRecognizer(Recognizer):
    entity = EntityType.STREET_ADDRESS
    name_hints = (r"address", r"\baddr", r"street", r"\bstrasse", r"adresse", r"residence", r"home_?addr")
    negative_name_hints = (r"\bip\b", r"e_?mail", r"mac_?addr", r"url", r"web")
    priority = 55
    min_share = 0.5
    text_pattern = rf"(?<![\w-]){_ANY}(?![\w])"
    context_words = ("live", "lives", "address", "resides", "moved to", "at ")
    base_score = 0.85

    def match_cells(self, values: pd.Series) -> np.ndarray:
        pat = re.compile(_ANY)
        # an address cell may carry a trailing country or stray punctuation: match at the start
        return np.asarray(as_mask(values.str.match(pat)) & as_mask(values.str.len() < 160), dtype=bool)

    def score_span(self, match: str, before: str, after: str) -> float | None:
        return 0.9 if self.has_context(before[-20:]) else self.base_score
