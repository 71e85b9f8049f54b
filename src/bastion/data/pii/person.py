"""PERSON recognizer: full, first and last names in columns; names in prose from the bundled dictionaries,
titles (Mr., Dr. ...), capitalisation and context words ("patient", "spoke with")."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from bastion.data.pii._mask import mask_name
from bastion.data.pii._names import AMBIGUOUS, NOT_NAMES, TITLES, first_names, last_names
from bastion.data.pii.interface import EntityType, Recognizer, as_mask, fullmatch_mask

__all__ = ["PersonRecognizer"]
_NONSPACE = re.compile(r"\S+")

# Latin-1 plus Latin Extended-A (Polish, Czech, Hungarian, Turkish ... letters)
_EXT_UP = "".join(c for c in map(chr, range(0x100, 0x180)) if c.isupper())
_EXT_LOW = "".join(c for c in map(chr, range(0x100, 0x180)) if c.islower())
_UP = "A-ZÀ-ÖØ-Þ" + _EXT_UP
_LOW = "a-zß-öø-ÿ" + _EXT_LOW
_TOK = rf"(?:O['’]|Mc|Mac|D['’])?[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?"
_PARTICLE = r"(?:van der|van den|van de|van|von|de la|de los|del|de|da|di|dos|du|le|la|bin|ibn|al|el|ten|ter)"
_TITLE = "|".join(sorted(TITLES, key=len, reverse=True))
_SEQ = re.compile(
    rf"(?=[{_UP}])(?<![\w.@'’-])(?:(?P<title>{_TITLE})\.? (?P<lead>(?:{_PARTICLE} ){{0,2}}))?"
    rf"(?P<name>{_TOK}(?: (?:{_PARTICLE} )?{_TOK}){{0,3}})(?![\w@'’])"
)
_CONTEXT = (
    "patient", "name", "named", "called", "spoke with", "spoke to", "met with", "contact", "son ", "daughter",
    "wife", "husband", "mother", "father", "brother", "sister", "dear", "hi ", "hello", "cc:", "signed",
    "seen by", "referred by", "guardian", "caregiver", "pt ", "client", "customer", "user",
)
# Both start with a consumed capital and test what stands before it in a lookbehind over that capital and the
# character(s) before it (the same test as a lookbehind before the capital): the engine skips to capitals fast.
_INITIAL_NAME = re.compile(rf"[A-Z](?<![\w.][A-Z])(?<!\d [A-Z])\. ?(?P<name>{_TOK}(?: {_TOK})?)(?![\w@'’])")
_CAPS_COMMA = re.compile(
    rf"(?P<last>[{_UP}](?<![\w][{_UP}])[{_UP}]+(?:[-' ][{_UP}]{{2,}})?), (?P<first>{_TOK})(?![\w@'’])"
)
_CELL = re.compile(
    rf"(?:(?:{_TITLE})\.? )?(?P<first>{_TOK})(?:,? (?:{_PARTICLE} )?(?:[{_UP}]\. )?(?P<last>{_TOK}(?: {_TOK})?))?"
)


_FACILITY_AFTER = re.compile(
    r"['’]?s? (?:Hospital|Clinic|Medical|Center|Centre|Health|Healthcare|Institute|University|College|School|"
    r"Foundation|Pharmacy|Practice|Surgery|Infirmary|Hospice|Laboratories|Labs?|Group|Trust|Inc|Ltd|LLC|GmbH|"
    r"Memorial|General|Children['’]s|Regional|Community|Care|Nursing|Rehab|Rehabilitation|Pediatrics|Street|"
    r"Road|Avenue|Lane|Drive|Boulevard|Hall|House|Home|Park|Church|Cathedral|Station|Airport|Bank|Hotel)\b"
)
_FACILITY_BEFORE = re.compile(r"(?:St\.?|Saint|Santa|San|Mount|Mt\.?|Fort|Lake|Port) $")
# "Hospital La Paz", "Ospedale San Raffaele": a facility word before; "in Valencia": a place preposition before
# (looked up as the one or two words before a candidate: set lookups, cheaper than a regex per candidate)
_FACILITY_WORDS = frozenset(
    "Hospital Hôpital Ospedale Clínica Clinica Klinik Klinikum Centro Policlinico Ziekenhuis Universitario "
    "Campus".split()
)
_FACILITY_ARTICLES = frozenset("La Le El Del De Di San Santa St St.".split())
_PLACE_PREPOSITIONS = frozenset("in near nach aus à em naar uit bij".split())


def _after_facility_word(text: str, start: int) -> bool:
    if start < 3 or text[start - 1] != " " or (not text[start - 2].isalpha() and text[start - 2] != "."):
        return False
    lo = max(0, start - 16)
    j = text.rfind(" ", lo, start - 1)
    prev = text[(j if j >= 0 else lo - 1) + 1 : start - 1]
    if prev in _FACILITY_WORDS:
        return True
    if j <= 0 or prev not in _FACILITY_ARTICLES:
        return False
    return text[max(0, j - 16) : j].rsplit(" ", 1)[-1] in _FACILITY_WORDS


def _after_place_preposition(text: str, start: int) -> bool:
    words = text[max(0, start - 6) : start].split()
    return bool(words) and text[start - 1] == " " and words[-1] in _PLACE_PREPOSITIONS and (
        start - 1 - len(words[-1]) <= 0 or not text[start - 2 - len(words[-1])].isalnum()
    )
# a word after a title that is itself a title or a form of address ("Herr Kollege Dr. ...")
_NOT_AFTER_TITLE = frozenset(TITLES) | {"Kollege", "Kollegin", "Collega", "Collègue", "Colleague"}


def _mid_sentence(text: str, pos: int) -> bool:
    """True when the word before ``pos`` is a lower-case word (so capitalisation here is meaningful)."""
    before = text[max(0, pos - 20) : pos].rstrip()
    return bool(before) and before[-1].isalpha() and before[-1].islower()


def _member(values: list[object], names: frozenset[str]) -> np.ndarray:
    # a hashed set lookup per sampled cell: pandas' isin re-converts a 10k-name set on every call
    return np.fromiter((v in names for v in values), dtype=bool, count=len(values))


class PersonRecognizer(Recognizer):
    entity = EntityType.PERSON
    name_hints = (
        r"\bname\b", r"first_?name", r"last_?name", r"sur_?name", r"full_?name", r"given_?name",
        r"family_?name", r"\bfname\b", r"\blname\b", r"patient(?!_?(?:id|no|num|nr))", r"customer_?name",
        r"contact_?name", r"\bperson\b", r"owner", r"holder", r"employee(?!_?(?:id|no|num))", r"vorname",
        r"nachname", r"\bnom\b", r"prenom", r"prénom", r"nombre", r"apellido",
    )
    negative_name_hints = (
        r"product", r"company", r"file", r"host", r"city", r"country", r"street", r"brand", r"model",
        r"category", r"drug", r"diagnos", r"occupation", r"title", r"user_?name", r"department",
    )
    priority = 35
    context_words = _CONTEXT
    base_score = 0.85
    #: distinct values an unnamed column needs before its values are taken for names
    min_distinct = 20

    def _cell_kinds(self, values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        norm = values.where(~values.str.isupper(), values.str.title())
        ok = fullmatch_mask(norm, _CELL)
        full, first_only, last_only = (np.zeros(len(values), dtype=bool) for _ in range(3))
        if not ok.any():
            return full, first_only, last_only  # every kind needs a name-shaped cell
        named = norm[ok]  # only name-shaped cells can be any kind: look closer at those alone
        ext = named.str.extract(rf"^(?:(?:{_TITLE})\.? )?(?P<a>{_TOK})(?:,? .*?(?P<b>{_TOK}))?$")
        first_set, last_set = first_names(), last_names()
        a_vals = ext["a"].tolist()
        b_vals = ext["b"].tolist()
        a_first = _member(a_vals, first_set)
        a_last = _member(a_vals, last_set)
        has_b = as_mask(ext["b"].notna())
        b_last = _member(b_vals, last_set)
        b_first = _member(b_vals, first_set)
        comma = as_mask(named.str.contains(",", regex=False))
        # one known part is enough for a "First Last" cell: names outside the dictionaries are common
        full[ok] = has_b & (a_first | b_last | (comma & a_last & b_first))
        first_only[ok] = ~has_b & a_first
        last_only[ok] = ~has_b & a_last & ~a_first
        return full, first_only, last_only

    def match_cells(self, values: pd.Series) -> np.ndarray:
        full, first_only, last_only = self._cell_kinds(values)
        return np.asarray(full | first_only | last_only, dtype=bool)

    def match_named(self, values: pd.Series) -> np.ndarray:
        """A column named for people ("patient", "full_name"): a name-shaped cell counts even when no part of
        it is in the dictionaries (two or more words, any script: "Sótiemér te Rylouai", "王丽华")."""
        from bastion.data.pii._context_names import name_shaped_cells

        return np.asarray(self.match_cells(values) | name_shaped_cells(values), dtype=bool)

    def refine(self, values: pd.Series, mask: np.ndarray, *, named: bool) -> tuple[float, tuple[str, ...]]:
        if not mask.any():
            return 1.0, ()
        full, first_only, last_only = self._cell_kinds(values)
        if named and (full | first_only | last_only).mean() < 0.5 * mask.mean():
            # names by shape alone: people are many and distinct, a status column ("Awaiting Triage") is not
            distinct = values.nunique()
            if distinct < min(self.min_distinct, 0.25 * len(values)):
                return 0.0, (f"only {distinct} distinct name-shaped values: categories, not names",)
            return 1.0, (f"name-shaped values (no dictionary needed) in {mask.mean():.0%} of cells",)
        distinct = values.nunique()
        matched_distinct = values[mask].nunique()
        d_share = matched_distinct / max(1, distinct)
        kind = max((("full names", full.mean()), ("first names", first_only.mean()), ("last names", last_only.mean())),
                   key=lambda t: t[1])
        why = f"{kind[0]} from the bundled dictionaries in {kind[1]:.0%} of cells, {d_share:.0%} of distinct values"
        if named:
            return 1.0, (why,)
        if distinct < self.min_distinct:
            return 0.0, (f"only {distinct} distinct values: categories, not names",)
        if d_share < 0.5:
            return 0.0, (f"only {d_share:.0%} of distinct values are dictionary names",)
        if kind[0] == "last names" and d_share < 0.75:
            return 0.0, ("surname-like words without a name column or first names",)
        return (1.0 if kind[0] == "full names" else 0.9), (why,)

    def find_in_text(self, text: str) -> Iterator[tuple[int, int, float]]:
        from bastion.data.pii._context_names import find_context_names

        yield from self._find_sequences(text)
        # names outside the dictionaries, by the words around them (titles, relatives, roles, sign-offs)
        yield from find_context_names(text)
        first_set = first_names()
        # "J. Grunt": an initial and a capitalised surname, dictionary or not
        for m in _INITIAL_NAME.finditer(text):
            words = m.group("name").split()
            if words[0] in NOT_NAMES or words[-1] in NOT_NAMES or _FACILITY_AFTER.match(text, m.end()):
                continue
            yield m.start(), m.end(), 0.7
        # "GIRAUD, Marc": a surname in capitals, a comma and a given name
        for m in _CAPS_COMMA.finditer(text):
            first = m.group("first")
            if first in NOT_NAMES or first in TITLES or len(m.group("last")) < 3:
                continue
            yield m.start(), m.end(), 0.85 if first.split("-")[0] in first_set else 0.7

    def _find_sequences(self, text: str) -> Iterator[tuple[int, int, float]]:
        first_set, last_set = first_names(), last_names()
        for m in _SEQ.finditer(text):
            title, name = m.group("title", "name")
            if title is None and " " not in name and name not in first_set and name not in last_set:
                continue  # the common case: one capitalised word that is no name
            start = m.start("name")
            toks = []  # (offset, word): the words of a run are separated by single spaces
            for word in name.split(" "):
                toks.append((start, word))
                start += len(word) + 1
            keep_unknown = False
            if title is None:
                while toks and toks[0][1] in NOT_NAMES:
                    toks.pop(0)
                # an unknown word before a known surname, capitalised mid-sentence, is a given name
                keep_unknown = (
                    len(toks) >= 2 and toks[1][1] in last_set and toks[0][1] not in AMBIGUOUS
                    and _mid_sentence(text, toks[0][0])
                )
                while not keep_unknown and toks and toks[0][1] not in first_set and toks[0][1] not in last_set:
                    toks.pop(0)
            while toks and toks[-1][1] in NOT_NAMES:
                toks.pop()
            while len(toks) > 2 and toks[-1][1] not in first_set and toks[-1][1] not in last_set:
                toks.pop()
            # keep particles inside the name only
            while toks and toks[-1][1][0].islower():
                toks.pop()
            if not toks:
                continue
            s, e = toks[0][0], toks[-1][0] + len(toks[-1][1])
            if _FACILITY_AFTER.match(text, e) or _FACILITY_BEFORE.search(text, max(0, s - 7), s):
                continue  # "St. Mary's Hospital", "Mercy General": places named after people
            words = [t for _, t in toks if t[0].isupper()]
            if _after_facility_word(text, s):
                continue
            if title is not None:
                if any(t in _NOT_AFTER_TITLE for t in words):
                    continue  # "Herr Kollege Dr": the name comes after the last title (found from there)
                yield (m.start("lead") if m.group("lead") else s), e, 0.92
                continue
            if len(words) == 1 and _after_place_preposition(text, s):
                continue  # "a holiday in Valencia": a place
            # (context words are looked for only where they change the verdict)
            if len(words) >= 2:
                head, tail = words[0], words[-1]
                if head in NOT_NAMES or tail in NOT_NAMES:
                    continue
                if head in first_set and (tail in last_set or tail in first_set or tail not in AMBIGUOUS):
                    yield s, e, 0.9 if (tail in last_set or self._context_at(text, s)) else 0.75
                elif head in last_set and tail in first_set:
                    yield s, e, 0.7
                elif title is None and keep_unknown and tail in last_set:
                    yield s, e, 0.7
                elif (head in last_set or tail in last_set) and self._context_at(text, s):
                    yield s, e, 0.65
                continue
            word = words[0] if words else ""
            if word in NOT_NAMES:
                continue
            if word in first_set and word not in AMBIGUOUS:
                yield s, e, 0.8 if self._context_at(text, s) else 0.6
            elif (word in first_set or word in last_set) and self._context_at(text, s):
                yield s, e, 0.6

    def _context_at(self, text: str, s: int) -> bool:
        """A context word in the same sentence, shortly before ``s``."""
        before = text[max(0, s - 28) : s]
        cut = max(before.rfind(". "), before.rfind("; "), before.rfind("\n"))
        if cut >= 0:
            before = before[cut + 1 :]  # context words of the previous sentence say nothing here
        return self.has_context(before)

    def mask(self, value: str) -> str:
        return mask_name(value)
