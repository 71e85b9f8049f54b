"""STREET_ADDRESS recognizer: whole addresses, house number through postcode and city, in US, UK, German,
French, Spanish, Italian and Dutch formats (plus Polish and Brazilian postcodes).

A column is an address column when its cells have address structure (a house number, a street type in one
of those languages or a postcode, few ordinary words); it is protected as a whole. In text the span covers
the whole address so that no house number, street, city or postcode survives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from bastion.data.pii.interface import EntityType, Recognizer, as_mask

__all__ = ["StreetAddressRecognizer", "address_like"]

_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
    r"Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Close|Crescent|Grove|Gardens|Row|Mews|Hill|"
    r"Walk|Path|Alley|Loop|Pike|Plaza|Park|Point|Ridge|Run|Landing|Green|Gate|Heights|Centreway|Parade|"
    r"Esplanade|Wharf|Quay|View|Vale|Rise|Hollow|Crossing|Junction|Village|Ville|Meadows?|Court|Mall|Fields?|"
    r"Estates?|Springs?|Shores?|Harbou?r|Port|Ports|Station|Turnpike|Expressway|Freeway|Light|Lights|Knoll|"
    r"Glen|Dale|Brook|Creek|Falls|Ford|Forge|Mill|Mills|Manor|Orchard|Pass|Pines|Stream|Summit|Track|Trace|"
    r"Union|Valley|Vista|Wells?|Bypass|Causeway|Corner|Cove|Crest|Dam|Divide|Extension|Flats?|Fork|Haven|"
    r"Island|Isle|Key|Lodge|Motorway|Oval|Overpass|Radial|Ranch|Roads|Route|Shoal|Skyway|Spur|Stravenue|"
    r"Underpass|Ways)"
)
_CAP = r"[A-ZÀ-Þ][a-zß-ÿ'’]+"
_UNIT = r"(?:,? (?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|#) ?#?[\w-]{1,6})?"
_US_TAIL = rf"(?:,? {_CAP}(?: {_CAP}){{0,2}}(?:,? [A-Z]{{2}}(?:,? \d{{4,5}}(?:-\d{{4}})?)?)?)?"
_UK_POST = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
_UK_TAIL = rf"(?:,? {_CAP}(?: {_CAP}){{0,2}})?(?:,? {_UK_POST})?"
_US = (
    rf"\d{{1,6}}[A-Z]? (?:(?:[NSEW]|North|South|East|West)\.? )?(?:{_CAP} |\d{{1,3}}(?:st|nd|rd|th) ){{1,3}}"
    rf"{_SUFFIX}\.?{_UNIT}(?:{_US_TAIL}|{_UK_TAIL})"
)
_UK_FLAT = rf"(?:Flat|Apartment|Unit) \d{{1,4}}[A-Z]?, (?:{_CAP} ){{1,3}}{_SUFFIX}{_UK_TAIL}"
# (the lookaheads after the first letter in _DE and _NL are implied by the rest: a word, a space, a house number;
# they only stop the street-suffix search early on every other capitalised word)
_DE = (
    r"[A-ZÄÖÜ](?=[A-Za-zäöüß\-.]++ \d)"
    r"[A-Za-zäöüß\-]+(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer|chaussee|steig|pfad|"
    r"Straße|Weg|Platz|Allee|Gasse|Ring)"
    r" \d{1,4}[a-z]?(?:[-/]\d{1,4}[a-z]?)?(?:, ?\d{5} [A-ZÄÖÜ][a-zäöüß]+(?:[ -][A-ZÄÖÜ][a-zäöüß]+){0,2})?"
)
_FR = (
    r"\d{1,4}(?: bis| ter)?,? (?:rue|avenue|av\.|boulevard|bd|place|impasse|allée|chemin|quai|cours|route|"
    r"square|passage|voie|faubourg)"
    r"(?: (?:de la |de l'|du |des |de |d'|la |le |les )?[A-ZÀ-Þ][a-zà-ÿ'’]+(?:-[A-ZÀ-Þ]?[a-zà-ÿ'’]+)*){1,4}"
    r"(?:,? \d{5} [A-ZÀ-Þ][a-zà-ÿ\-]+(?: [A-ZÀ-Þ][a-zà-ÿ\-]+){0,3})?"
)
_ES_TYPES = (
    r"(?:Calle|C/|Avenida|Avda\.?|Av\.|Paseo|Plaza|Camino|Carrera|Ronda|Travesía|Cuesta|Rambla|Glorieta|Pasaje|"
    r"Vía|Callejón|Alameda|Urbanización|Cañada|Acceso|Carretera|Plazuela|Bajada|Subida|Senda|Sector|Vial|Rúa)"
)
_ES_NAME = r"(?: (?:de(?: la| las| los)?|del|la|las|los|el))?(?: [A-ZÁÉÍÓÚÑ][a-záéíóúñü]+){1,4}"
_ES = (
    rf"{_ES_TYPES}{_ES_NAME},? (?:n[º°o]\.? ?)?\d{{1,4}}(?: ?[A-Z])?(?:,? \d{{1,2}}[º°]? ?[A-Z]?)?"
    r"(?:,? (?:Apt\.|Piso|Puerta|Esc\.) ?\d{1,3}[º°]?[A-Z]?)?(?: ?,? ?(?:\d{5}(?: [A-ZÁÉÍÓÚÑ][\wáéíóúñ]+){1,3}"
    r"|[A-ZÁÉÍÓÚÑ][\wáéíóúñ]+(?: [A-ZÁÉÍÓÚÑ][\wáéíóúñ]+){0,2},? \d{5}))?"
)
_IT_TYPES = (
    r"(?:Via|Viale|Piazza|Piazzale|Corso|Largo|Vicolo|Strada|Contrada|Borgo|Rotonda|Incrocio|Canale|"
    r"Vicoletto|Stretto|Lungomare|Lungotevere|Salita|Calle|Rione)"
)
_IT = (
    rf"{_IT_TYPES}(?: (?:del|della|dei|degli|delle|di|San|Santa|Sant'))?(?: [A-Z][\w'’]+){{1,4}},? \d{{1,4}}"
    r"(?:/[A-Z0-9]{1,3})?(?: (?:Appartamento|Piano|Interno|Scala) \d{1,3})?"
    r"(?:,? \d{5},? [A-Z][\w']+(?: [A-Z][\w']+){0,3}(?: \([A-Z]{2}\))?)?"
)
_NL = (
    r"[A-Z](?=[a-z]++ \d)[a-z]+(?:straat|laan|weg|plein|singel|gracht|kade|dijk|hof|park|steeg|pad|dreef|markt|baan|"
    r"wal|veld|burg|poort|plantsoen|boulevard|ring)"
    r" \d{1,4}(?: ?[a-zA-Z]|-\d{1,3})?(?:,? \d{4} ?[A-Z]{2}(?:,? '?s?-?[A-Z][\w'-]+(?: [A-Z][\w-]+){0,2})?)?"
)
_PL = (
    r"(?:ul\.|al\.|pl\.|plac|ulica|aleja|os\.|osiedle)(?: [A-ZŁŚŻŹĆÓa-ząćęłńóśźż][\wąćęłńóśźż]+){1,4} \d{1,4}"
    r"[A-Za-z]?(?:/\d{1,4})?(?:, \d{2}-\d{3} [A-ZŁŚŻŹĆ][\wąćęłńóśźż]+(?:[ -][A-ZŁŚŻŹĆ][\wąćęłńóśźż]+)?)?"
)
_ANY = rf"(?:{_US}|{_UK_FLAT}|{_DE}|{_FR}|{_ES}|{_IT}|{_NL}|{_PL})"

# ---- structure of a whole cell: house number, street type or postcode, and few ordinary words
_STREET_WORDS = {
    w.lower()
    for w in re.findall(r"[A-Za-zÀ-ÿ]+", _SUFFIX + _ES_TYPES + _IT_TYPES)
    if len(w) > 1
} | set(
    "rue avenue boulevard place impasse allée chemin quai cours route ul al plac ulica aleja os osiedle flat apt"
    " apartment suite unit appartamento piano interno scala piso puerta bis ter de la del della di du des le"
    " les van der den het te aan op sur sous am an im der die das und y e i do da dos das box".split()
)  # fmt: skip
_POSTCODE = re.compile(
    r"\b[A-Z]{2},? \d{5}(?:-\d{4})?\b"  # US state + ZIP
    rf"|\b{_UK_POST}\b"  # UK
    r"|\b\d{4} ?[A-Z]{2}\b"  # NL
    r"|\b\d{2}-\d{3}\b|\b\d{5}-\d{3}\b"  # PL, BR
    r"|(?:^|, ?)\d{5}(?: |,|$)"  # DE, FR, ES, IT after a comma or before the city
    r"|\b[A-Z]{2,3},? \d{4}\b"  # AU state + postcode
)
_STREETY = re.compile(
    r"(?i)(?:straße|strasse|str\.|weg|platz|allee|gasse|straat|laan|plein|singel|gracht|kade|dijk)\b"
)
_NUMBER = re.compile(r"(?<![\w.])\d{1,5}[A-Za-z]?(?:[-/]\d{1,4})?(?![\w.])")
_WORDS = re.compile(r"[A-Za-zÀ-ÿ'’]+")


def address_like(values: pd.Series) -> np.ndarray:
    """Cells with the structure of an address: a house number, a street type or a postcode, commas or a
    postcode, and hardly any ordinary lower-case words (so notes that merely mention an address do not)."""
    out = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.tolist()):
        if not isinstance(v, str) or len(v) > 160 or not _NUMBER.search(v):
            continue
        words = _WORDS.findall(v)
        if not words or len(words) > 16:
            continue
        lower = [w for w in words if w[0].islower() and w.lower() not in _STREET_WORDS]
        if len(lower) > 1:
            continue
        street = any(w.lower() in _STREET_WORDS and w[0].isupper() for w in words) or bool(_STREETY.search(v))
        post = bool(_POSTCODE.search(v))
        if (street and ("," in v or post)) or (post and "," in v):
            out[i] = True
    return out


class StreetAddressRecognizer(Recognizer):
    entity = EntityType.STREET_ADDRESS
    name_hints = (
        r"address", r"\baddr", r"street", r"\bstrasse", r"adresse", r"residence", r"home_?addr", r"direcci[oó]n",
        r"indirizzo", r"adres\b", r"domicil", r"anschrift",
    )  # fmt: skip
    negative_name_hints = (r"\bip\b", r"e_?mail", r"mac_?addr", r"url", r"web")
    priority = 55
    min_share = 0.5
    # the lookahead is implied by _ANY (digit, capital or Polish ul./al./pl./os.): it only skips positions faster
    text_pattern = rf"(?<![\w-])(?=[\dA-ZÄÖÜuapo]){_ANY}(?![\w])"
    context_words = ("live", "lives", "address", "resides", "moved to", "at ", "wohnt", "habite", "vive", "abita")
    base_score = 0.85

    def match_cells(self, values: pd.Series) -> np.ndarray:
        pat = re.compile(_ANY)
        # an address cell may carry a trailing country or stray punctuation: match at the start
        start = as_mask(values.str.match(pat)) & as_mask(values.str.len() < 160)
        return np.asarray(start | address_like(values), dtype=bool)

    def score_span(self, match: str, before: str, after: str) -> float | None:
        return 0.9 if self.has_context(before[-20:]) else self.base_score

    def find_in_text(self, text: str) -> Iterator[tuple[int, int, float]]:
        """Known street formats, then any address that ends in a postcode: from the postcode back to the
        house number (and the street type before it, where the number follows the street) and on to the city."""
        yield from super().find_in_text(text)
        for m in _TEXT_POSTCODE.finditer(text):
            ps, pe = m.start("code"), m.end()
            start = _address_start(text, ps)
            if start is None:
                continue
            tail = _CITY_AFTER.match(text, pe)
            end = tail.end() if tail else pe
            yield start, end, 0.85


_TEXT_POSTCODE = re.compile(
    # the two lookaheads split the alternatives by their first character (each keeps its order): a capital
    # tries two of them, a digit the other eight; they only skip positions faster
    r"(?P<code>"
    r"(?=[A-Z])\b(?:[A-Z]{2,3},? \d{4,5}(?:-\d{4})?"  # US state + ZIP, AU state + postcode
    rf"|{_UK_POST})"
    r"|(?=\d)(?:\b(?:\d{4} ?[A-Z]{2}"  # NL
    r"|\d{2}-\d{3}|\d{5}-\d{3}|\d{8})"  # PL, BR
    r"|(?<=, )\d{5,6}|\d{5}(?= [A-ZÀ-Þ])|(?<=-)\d{6}|(?<=[a-z] )\d{6})"  # DE/FR/ES/IT, IN
    r")(?![\w-])"
)
_CITY_AFTER = re.compile(
    r"(?:,? ?(?:[A-ZÀ-Þ'][\w'’]*|(?:am|an|der|de|di|do|da|in|en|sur|upon|/)(?= [A-ZÀ-Þ/]))(?:-(?:[\w'’]+))*){1,5}"
    r"(?: \([A-Z]{2}\))?"
)
_UNIT_BEFORE = re.compile(
    r"(?:Flat|Studio|Apartment|Apt\.?|Unit|Suite|Ste\.?|Level|Floor|H\.? ?No\.?|House|PSC|Box|Room|Lot|Block|"
    r"Piso|Casa|Lote)\s?[\w-]{0,5},?\s?$"
)
_STREET_TYPES_START = (
    "rue avenue boulevard place impasse allée chemin quai cours route square passage calle c/ c. avenida av. "
    "avda. paseo plaza pza. camino carretera ctra. ronda travesía cuesta rambla glorieta pasaje pasadizo vía "
    "callejón alameda urbanización cañada acceso bajada subida senda rúa rua travessa praça rodovia estrada largo "
    "quadra vila residencial lago lagoa conjunto setor loteamento chácara fazenda sítio núcleo condomínio jardim "
    "via viela vale morro ladeira parque pátio recanto distrito viale piazza piazzale corso vicolo strada contrada "
    "borgo ul. al. pl. plac ulica aleja os. osiedle"
).split()
_SUFFIX_WORD = re.compile(
    r"(?i).+(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer|straat|laan|plein|singel|gracht|kade|"
    r"dijk|hof|steeg|dreef|markt|boulevard)$"
)
_SEGMENT_END = re.compile(r"[;:!?()\n]|(?<![A-Z])\.(?= [a-z])|(?<![A-Z][a-z])(?<![A-Z])(?<!\b[A-Z][a-z]{2})\. ")
_HOUSE = re.compile(
    r"(?:(?:Flat|Studio|Apartment|Apt\.?|Unit|Suite|Ste\.?) [\w-]{1,5},? )?"
    r"\d{1,5}(?:[A-Za-z]\b|[/-]\d{1,4})?\b"
)
_OK_WORD = re.compile(r"[A-ZÀ-Þ][\w'’.-]*|\d{1,5}[A-Za-z]?|[\w'’.-]+")


def _address_start(text: str, ps: int) -> int | None:
    """Where the address that ends at the postcode at ``ps`` starts (its house number), or None."""
    lo = max(0, ps - 140)
    window = text[lo:ps]
    cut = 0
    for m in _SEGMENT_END.finditer(window):
        cut = m.end()
    seg_start = lo + cut
    for h in _HOUSE.finditer(text, seg_start, ps):
        body = text[h.end() : ps]
        words = _WORDS.findall(body)
        lower = [w for w in words if w[0].islower() and w.lower() not in _STREET_WORDS]
        if len(lower) > 1 or len(words) > 12:
            continue
        if not words and "," not in body:
            continue
        start = h.start()
        before = text[seg_start:start]
        unit = _UNIT_BEFORE.search(before)
        if unit:
            return seg_start + unit.start()
        # "Via Roma, 12" / "Quadra de Machado, 393" / "Hauptweg 3": the street comes before the number
        pre = re.search(
            r"(?:(?:[A-ZÀ-ÞŻŹŁŚĆ][\w'’.]*|[a-z]{1,3}\.|c/|de|del|della|di|da|do|dos|das|la|le|i|y) ?){1,6},? ?$",
            before,
        )
        if pre:
            words = pre.group(0).split()
            first = words[0].lower().strip(",")
            caps = sum(1 for w in words if w[0].isupper())
            if (
                first in _STREET_WORDS
                or first in _START_SET
                or _SUFFIX_WORD.fullmatch(words[-1].strip(","))
                or (before.endswith(", ") and caps >= 2)  # "Estação Leandro das Neves, 49, ..."
            ):
                start = seg_start + pre.start()
        return start
    # no house number ("rue Benoit, 26153 Malletnec"): a street type word starts it
    for t in _TYPE_START.finditer(text, seg_start, ps):
        body = text[t.end() : ps]
        words = _WORDS.findall(body)
        if len(words) <= 8 and not [w for w in words if w[0].islower() and w.lower() not in _STREET_WORDS]:
            return t.start()
    return None


_START_SET = frozenset(_STREET_TYPES_START)
_TYPE_START = re.compile(
    r"(?<![\w])(?:" + "|".join(re.escape(w) for w in sorted(_START_SET, key=len, reverse=True)) + r")(?= )",
    re.IGNORECASE,
)
