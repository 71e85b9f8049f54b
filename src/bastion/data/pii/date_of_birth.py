"""DATE_OF_BIRTH recognizer: dates are birth dates only when the column name or nearby words say so,
or (unnamed columns) when their spread looks like birth dates (decades, none recent)."""

from __future__ import annotations

import datetime as _dt
import re

import numpy as np
import pandas as pd

from bastion.data.pii.interface import EntityType, Recognizer, fullmatch_mask

__all__ = ["DateOfBirthRecognizer"]
_SENTENCE_END = re.compile(r"[.;!?] (?=\S)|\n")

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_ISO = r"(?P<y1>(?:19|20)\d\d)[-/.](?P<m1>0?[1-9]|1[0-2])[-/.](?P<d1>0?[1-9]|[12]\d|3[01])"
_DMY = r"(?P<d2>0?[1-9]|[12]\d|3[01])[./-](?P<m2>0?[1-9]|1[0-2])[./-](?P<y2>(?:19|20)\d\d)"
_MDY = r"(?P<m3>0?[1-9]|1[0-2])/(?P<d3>0?[1-9]|[12]\d|3[01])/(?P<y3>(?:19|20)\d\d)"
_WORDY = (
    rf"(?:{_MONTHS}\.? \d{{1,2}}(?:st|nd|rd|th)?,? (?P<y4>(?:19|20)\d\d)"
    rf"|\d{{1,2}}(?:st|nd|rd|th)? {_MONTHS}\.?,? (?P<y5>(?:19|20)\d\d))"
)
# birth dates written out in Spanish, Portuguese, German, French, Italian and Dutch
_FOREIGN_MONTHS = (
    r"(?:enero|febrero|marzo|abril|mayo|junio|julio|agosto|sept?iembre|octubre|noviembre|diciembre|"
    r"janeiro|fevereiro|março|maio|junho|julho|setembro|outubro|novembro|dezembro|"
    r"Januar|Jänner|Februar|März|Mai|Juni|Juli|Oktober|Dezember|"
    r"janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre|"
    r"gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|"
    r"januari|februari|maart|mei|juli|augustus|oktober)"
)
_FOREIGN = (
    rf"(?:\d{{1,2}}(?:\.|º|er)? (?:de )?{_FOREIGN_MONTHS}(?: de|,)? (?P<y6>(?:19|20)\d\d))"
)
_DATE = rf"(?:{_ISO}|{_MDY}|{_DMY}|{_WORDY}|{_FOREIGN})"
_CELL = re.compile(rf"{_DATE}(?:[ T]00:00(?::00(?:\.0+)?)?)?")
_BIRTH_WORDS = (
    "born", "birth", "dob", "d.o.b", "geboren", "né le", "née le", "né ", "née ", "nacido", "nacida",
    "fecha de nacimiento", "f. nac", "nato", "nata", "data di nascita", "nascido", "nascida", "geb.",
    "date de naissance", "geboortedatum", "urodzon",
)  # fmt: skip
_NOT_BIRTH = (
    r"order", r"creat", r"updat", r"modif", r"visit", r"admi", r"discharg", r"hire", r"start", r"end",
    r"ship", r"deliver", r"transact", r"event", r"timestamp", r"expir", r"due", r"purchase", r"invoice",
    r"payment", r"signup", r"registered", r"login", r"last_", r"first_seen", r"manufact", r"release",
)


class DateOfBirthRecognizer(Recognizer):
    entity = EntityType.DATE_OF_BIRTH
    name_hints = (r"birth", r"\bdob\b", r"\bborn\b", r"\bbday\b", r"geburt", r"naissance")
    negative_name_hints = _NOT_BIRTH
    priority = 45
    # the lookahead is implied by _DATE (a digit or an English month); it only skips positions faster
    text_pattern = rf"(?<![\w/.-])(?=[\dJFMASOND]){_DATE}(?![\w/]|[.-]\d)"
    text_flags = re.IGNORECASE
    context_words = _BIRTH_WORDS
    base_score = 0.85
    #: an unnamed date column is birth-date-like when its latest date is this many years old or more
    min_age_years = 14
    min_spread_years = 25

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return fullmatch_mask(values, _CELL)

    def refine(self, values: pd.Series, mask: np.ndarray, *, named: bool) -> tuple[float, tuple[str, ...]]:
        if named or not mask.any():
            return 1.0, ()
        years = values[mask].str.extract(r"((?:19|20)\d\d)", expand=False).dropna().astype(int)
        if years.empty:
            return 0.0, ()
        lo, hi = int(years.min()), int(years.max())
        now = _dt.date.today().year
        if hi <= now - self.min_age_years and hi - lo >= self.min_spread_years:
            return 0.85, (f"dates span {hi - lo} years, the latest {now - hi} years ago: birth-date-like",)
        # children included: past dates over decades, spread out rather than bunched in recent years the way
        # visits, orders or sign-ups are
        recent = float((years >= now - 1).mean())
        median_age = now - float(years.median())
        if hi <= now and hi - lo >= self.min_spread_years and recent < 0.1 and median_age >= 10:
            return 0.8, (
                f"past dates spanning {hi - lo} years (median {median_age:.0f} years ago, {recent:.0%} in the last "
                "year): birth-date-like, children included",
            )
        return 0.0, (f"dates without birth context ({lo}–{hi}) are not reported as birth dates",)

    def score_span(self, match: str, before: str, after: str) -> float | None:
        # the birth word must be in the same sentence ("born on 3 May 1980. Seen on 4 June 2024" has one)
        near = _SENTENCE_END.split(before[-32:])[-1]
        return 0.9 if self.has_context(near) else None

    def mask(self, value: str) -> str:
        return re.sub(r"[^\W_]", "*", value)
