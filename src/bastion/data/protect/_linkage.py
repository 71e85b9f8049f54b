"""Row linkage: each row's identifying values (name, SSN, phone, email, IDs, address, birth date) found again
in that row's other cells, with normalised matching, plus a table-wide dictionary of its name columns.

Detectors miss names outside their dictionaries; the row itself says what its person is called.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

from bastion.data.pii._text import gc_paused
from bastion.data.pii.interface import Span
from bastion.data.pii.person import _FACILITY_AFTER, _FACILITY_BEFORE

__all__ = [
    "LINK_KINDS",
    "RowLinker",
    "fold",
    "link_kind",
    "merge_spans",
    "name_dictionary",
]

#: how values of an entity column are looked for in text
LINK_KINDS: dict[str, str] = {
    "PERSON": "name",
    "DATE_OF_BIRTH": "date",
    "STREET_ADDRESS": "address",
    "EMAIL": "literal",
    "URL": "literal",
    "IP_ADDRESS": "literal",
    "US_ZIP": "zip",
}
_NOT_LINKED = frozenset({"US_ZIP"})  # a ZIP alone is a quasi-identifier: only exact runs count
_TITLES = frozenset("mr mrs ms miss mx dr prof sir herr frau mme mlle sr sra dott dra".split())
_PARTICLES = frozenset("van der den de la los del da di dos du le bin ibn al el ten ter von y e".split())
_NAME_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
# a word starting with a capital of any Latin, Greek or Cyrillic alphabet ("Łukasz", "Şule", "Žofie", "Ольга")
_CAPITALS = "".join(
    c for c in map(chr, [*range(0xC0, 0x250), *range(0x1E00, 0x1F00), *range(0x386, 0x3AC), *range(0x400, 0x430)])
    if c.isupper()
)
_CAP_TOKEN = re.compile(rf"(?<![^\W\d_])[A-Z{_CAPITALS}][^\W\d_]*(?:['’][^\W\d_]+)?")
_DIGIT_RUN = re.compile(r"\d(?:[ .\-/()]{0,2}\d)*")
_RUN_SEPARATORS = str.maketrans("", "", " .-/()")
_NON_DIGIT = re.compile(r"\D")
_PREFIX = re.compile(r"[A-Za-z]{1,4}[-#: ]?$")
_INITIAL = re.compile(r"(?:^|(?<=[\s(]))([A-Z])\.? ?$")
_TRAILING_INITIAL = re.compile(r",? ?([A-Z])\.(?!\w)")
_JOIN = re.compile(r"[\s,-]*|[\s,]*(?:[A-Z]\.? ?)+|\s+(?:(?:van|von|de|der|den|la|del|da|di|du|y)\s+){1,2}")
_MONTHS = {
    "en": "January February March April May June July August September October November December",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "pt": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro",
}
_YEAR = re.compile(r"(?:1[89]|20)\d\d")
_ISO = re.compile(r"((?:1[89]|20)\d\d)[-/.](\d{1,2})[-/.](\d{1,2})")
_DMY = re.compile(r"(\d{1,2})[./-](\d{1,2})[./-]((?:1[89]|20)\d\d)")


def fold(text: str) -> str:
    """Lower case without diacritics, one character per character of ``text`` (so offsets carry over).

    Character by character: a letter whose lower case is longer ("İ" -> "i̇") keeps its first character, so
    one such letter cannot unfold the whole text (which once left every name in that note unlinked)."""
    low = text.lower()
    if len(low) == len(text):
        return low if low.isascii() else low.translate(_STRIP)  # one C loop; a mapping per new character
    return "".join(_fold_char(ch) for ch in text)


class _StripTable(dict[int, str]):
    """str.translate table: a non-ASCII lower-case letter to its first decomposed character ("ñ" -> "n")."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        out = ch if ch.isascii() else (unicodedata.normalize("NFKD", ch)[:1] or ch)
        self[code] = out
        return out


_STRIP = _StripTable()


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    low = ch.lower()[:1] or ch
    return low if low.isascii() else _STRIP[ord(low)]


def link_kind(entity: str | None) -> str | None:
    """How an entity column is looked for in text (None: it is not an identifying column)."""
    if entity is None:
        return None
    return LINK_KINDS.get(entity, "identifier")


def _word_at(text: str, s: int, e: int) -> bool:
    return (s == 0 or not text[s - 1].isalnum()) and (e >= len(text) or not text[e].isalnum())


def _find_all(hay: str, needle: str) -> Iterable[int]:
    if not needle:
        return
    i = hay.find(needle)
    while i >= 0:
        yield i
        i = hay.find(needle, i + 1)


@lru_cache(maxsize=65536)
def _date_variants(value: str) -> tuple[str, ...]:
    return tuple(_date_variants_uncached(value))


def _date_variants_uncached(value: str) -> list[str]:
    m = _ISO.search(value)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m2 = _DMY.search(value)
        if not m2:
            return [value]
        d, mo, y = int(m2.group(1)), int(m2.group(2)), int(m2.group(3))
        if mo > 12 and d <= 12:
            d, mo = mo, d
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return [value]
    out = {
        f"{y}-{mo:02d}-{d:02d}", f"{y}/{mo:02d}/{d:02d}", f"{mo:02d}/{d:02d}/{y}", f"{mo}/{d}/{y}",
        f"{d:02d}/{mo:02d}/{y}", f"{d}/{mo}/{y}", f"{d:02d}.{mo:02d}.{y}", f"{d}.{mo}.{y}", f"{d:02d}-{mo:02d}-{y}",
        f"{mo:02d}-{d:02d}-{y}",
    }  # fmt: skip
    for lang, names in _MONTHS.items():
        month = names.split()[mo - 1].lower()
        if lang == "en":
            for mname in (month, month[:3]):
                out |= {f"{mname} {d}, {y}", f"{mname} {d} {y}", f"{d} {mname} {y}", f"{mname}. {d}, {y}"}
            suffix = "th" if 4 <= d <= 20 or d % 10 in (0, 4, 5, 6, 7, 8, 9) else {1: "st", 2: "nd", 3: "rd"}[d % 10]
            out |= {f"{d}{suffix} {month} {y}", f"{month} {d}{suffix}, {y}"}
        elif lang in ("es", "pt"):
            out |= {f"{d} de {month} de {y}", f"{d} de {month} {y}"}
        elif lang == "de":
            out |= {f"{d}. {month} {y}", f"{d:02d}. {month} {y}", f"{d} {month} {y}"}
        else:
            out |= {f"{d} {month} {y}", f"{d:02d} {month} {y}"}
            if lang == "fr" and d == 1:
                out.add(f"1er {month} {y}")
    return [fold(v) for v in out]


def _lower(arr: pa.Array) -> list[str | None]:
    """Trimmed, folded strings of a column (C for ASCII; Python only for the rest)."""
    low: list[str | None] = pc.utf8_lower(pc.utf8_trim_whitespace(arr)).to_pylist()
    return [v if v is None or v.isascii() else fold(v) for v in low]


@dataclass
class _Sources:
    """The identifying columns of a batch, prepared column by column (vectorised where possible)."""

    literals: list[tuple[list[str | None], str]] = field(default_factory=list)
    digits: list[tuple[list[str | None], str]] = field(default_factory=list)
    names: list[list[list[str] | None]] = field(default_factory=list)
    dates: list[tuple[list[str | None], list[str | None], str]] = field(default_factory=list)
    zips: list[list[str | None]] = field(default_factory=list)
    #: per name column, per row: the name and its words when written in a script without letter case (Han,
    #: Arabic, Devanagari ...), found again exactly, with no transliteration (their words have no capitals to
    #: start from and no spaces to end at)
    scripts: list[list[list[str] | None]] = field(default_factory=list)

    def _add_caseless(self, arr: pa.Array) -> None:
        hit = pc.fill_null(pc.match_substring_regex(arr, _CASELESS), False)
        if not pc.any(hit).as_py():
            return  # the common case, decided in C: no name of this batch is in such a script
        flags = hit.to_pylist()
        values = arr.to_pylist()
        self.scripts.append([_caseless_needles(v) if f else None for v, f in zip(values, flags, strict=True)])

    def add(self, kind: str, entity: str, arr: pa.Array) -> None:
        if kind == "name":
            self._add_caseless(arr)
            toks = pc.split_pattern_regex(pc.utf8_lower(arr), r"[^\p{L}\p{N}'’]+").to_pylist()
            self.names.append(
                # a particle alone identifies nobody ("de la" of the row's name is not "Hospital La Paz")
                [
                    None
                    if t is None
                    else [fold(x) if not x.isascii() else x for x in t if len(x) > 1 and x not in _PARTICLES]
                    for t in toks
                ]
            )
        elif kind == "date":
            years = pc.struct_field(pc.extract_regex(arr, r"(?P<y>(?:1[89]|20)\d\d)"), "y").to_pylist()
            self.dates.append((years, arr.to_pylist(), entity))
        elif kind == "zip":
            d = pc.replace_substring_regex(arr, r"\D", "")
            self.zips.append(pc.if_else(pc.greater_equal(pc.utf8_length(d), 5), pc.utf8_slice_codeunits(d, 0, 5),
                                        pa.scalar(None, pa.string())).to_pylist())
        elif kind == "address":
            self.literals.append((_lower(arr), entity))
            head = pc.list_element(pc.split_pattern(arr, ",", max_splits=1), 0)
            ok = pc.and_(pc.match_substring_regex(head, r"\d.* |\D.* \d"), pc.less(pc.utf8_length(head),
                                                                                   pc.utf8_length(arr)))
            ok = pc.and_(ok, pc.greater_equal(pc.utf8_length(pc.utf8_trim_whitespace(head)), 6))
            self.literals.append((_lower(pc.if_else(ok, head, pa.scalar(None, pa.string()))), entity))
        else:
            low = _lower(arr)
            self.literals.append(([v if v is not None and len(v) >= 4 else None for v in low], entity))
            if kind == "identifier":
                d = pc.replace_substring_regex(arr, r"\D", "")
                long = pc.greater_equal(pc.utf8_length(d), 5)
                self.digits.append((pc.if_else(long, d, pa.scalar(None, pa.string())).to_pylist(), entity))
                if entity == "PHONE":
                    tail = pc.utf8_slice_codeunits(d, -10)
                    more = pc.greater(pc.utf8_length(d), 10)
                    self.digits.append((pc.if_else(more, tail, pa.scalar(None, pa.string())).to_pylist(), entity))


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Overlapping spans become one (their union), typed by the longest of them; sorted by start."""
    if not spans:
        return []
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    out: list[Span] = []
    cur = ordered[0]
    best = cur
    for sp in ordered[1:]:
        if sp.start < cur.end:
            if sp.end - sp.start > best.end - best.start:
                best = sp
            if sp.end > cur.end:
                cur = Span(best.entity, cur.start, sp.end, max(cur.score, sp.score))
            else:
                cur = Span(best.entity, cur.start, cur.end, max(cur.score, sp.score))
            continue
        out.append(cur)
        cur = best = sp
    out.append(cur)
    return out


def _join_names(text: str, hits: list[tuple[int, int]], initials: set[str]) -> list[tuple[int, int]]:
    """Adjacent name hits become one span; an initial just before a hit ("J. Smith") joins it."""
    hits.sort()
    out: list[tuple[int, int]] = []
    for s, e in hits:
        m = _INITIAL.search(text, max(0, s - 4), s)
        if m and m.group(1).lower() in initials:
            s = m.start(1)
        if out and out[-1][1] <= s and _JOIN.fullmatch(text, out[-1][1], s):
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        elif out and s < out[-1][1]:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    for k, (s, e) in enumerate(out):
        m = _TRAILING_INITIAL.match(text, e)
        if m and m.group(1).lower() in initials:
            out[k] = (s, m.end())
    return out


_CASELESS = (
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Arabic}\p{Hebrew}\p{Devanagari}\p{Bengali}\p{Tamil}"
    r"\p{Telugu}\p{Gujarati}\p{Gurmukhi}\p{Thai}\p{Georgian}]"
)
_CASELESS_PY = re.compile(
    "[\u0590-\u06ff\u0900-\u0dff\u0e00-\u0e7f\u10a0-\u10ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]"
)


def _caseless_needles(value: object) -> list[str] | None:
    if not isinstance(value, str):
        return None
    whole = value.strip()
    parts = [w for w in whole.split() if len(w) >= 2 and _CASELESS_PY.search(w)]
    needles = sorted({whole, *parts} if len(whole) >= 2 else set(parts), key=len, reverse=True)
    return needles or None


def _add_caseless_names(found: list[Span], text: str, scripts: list[list[list[str] | None]], i: int) -> None:
    for col in scripts:
        needles = col[i]
        if needles:
            for needle in needles:
                for j in _find_all(text, needle):
                    found.append(Span("PERSON", j, j + len(needle), 1.0))


def _find_row(
    text: str,
    src: _Sources,
    i: int,
    dictionary: frozenset[str] | None,
) -> list[Span]:
    low = fold(text)
    found: list[Span] = []
    for col, entity in src.literals:
        needle = col[i]
        if needle and needle in low:
            _add_literal(found, low, needle, entity)
    for years, values, entity in src.dates:
        year = years[i]
        if year and year in text:
            for needle in _date_variants(values[i] or ""):
                if needle in low:
                    _add_literal(found, low, needle, entity)
    digits = [(d, e) for col, e in src.digits if (d := col[i])]
    zips = {v for z in src.zips if (v := z[i])}
    if digits or zips:
        _add_digits(found, text, digits, zips)
    names: set[str] = set()
    for name_col in src.names:
        toks = name_col[i]
        if toks:
            names.update(toks)
    if names or dictionary:
        _add_names(found, text, low, names, {n[0] for n in names}, dictionary)
    if src.scripts:
        _add_caseless_names(found, text, src.scripts, i)
    return merge_spans(found) if len(found) > 1 else found


def _add_digits(found: list[Span], text: str, digits: list[tuple[str, str]], zips: set[str]) -> None:
    """Digit runs equal to one of the row's values (a phone number's also with up to 3 more digits in front or 5
    after); of several, the value listed first; else a run equal to one of the row's ZIP codes."""
    first: dict[str, int] = {}
    phones: list[tuple[int, str]] = []
    for k, (d, entity) in enumerate(digits):
        first.setdefault(d, k)
        if entity == "PHONE":
            phones.append((k, d))
    for m in _DIGIT_RUN.finditer(text):
        run = m.group(0).translate(_RUN_SEPARATORS)  # a run holds digits and these separators only
        if len(run) < 5:
            continue
        best = first.get(run, len(digits))
        for k, d in phones:
            if k >= best:
                break
            if (run.endswith(d) and len(run) - len(d) <= 3) or (run.startswith(d) and len(run) - len(d) <= 5):
                best = k
                break
        s, e = m.span()
        if best < len(digits):
            p = _PREFIX.search(text, max(0, s - 5), s)
            found.append(Span(digits[best][1], p.start() if p and p.group(0)[0].isupper() else s, e, 1.0))
        elif run in zips:
            found.append(Span("US_ZIP", s, e, 1.0))


def _add_names(
    found: list[Span], text: str, low: str, names: set[str], initials: set[str], dictionary: frozenset[str] | None
) -> None:
    hits: list[tuple[int, int]] = []
    for m in _CAP_TOKEN.finditer(text):
        f = low[m.start() : m.end()]
        if f in names or (dictionary is not None and f in dictionary):
            hits.append(m.span())
        elif ("'" in f or "’" in f) and re.split(r"['’]", f)[0] in names:
            hits.append(m.span())
    if hits:
        for s, e in _join_names(text, hits, initials):
            place = _FACILITY_AFTER.match(text, e) or _FACILITY_BEFORE.search(text, max(0, s - 7), s)
            if dictionary is not None and place:
                # another row's name inside "Johns Hopkins Hospital": a place, unless it is this row's own
                if not all(low[a:b] in names for a, b in hits if s <= a < e):
                    continue
            found.append(Span("PERSON", s, e, 1.0))


def _add_literal(found: list[Span], low: str, needle: str, entity: str) -> None:
    for i in _find_all(low, needle):
        if _word_at(low, i, i + len(needle)):
            found.append(Span(entity, i, i + len(needle), 1.0))


def name_dictionary(values: Iterable[object], *, exclude: Iterable[str] = ()) -> frozenset[str]:
    """Folded name words of a table's name column(s), without words that are often not names."""
    from bastion.data.pii._names import AMBIGUOUS, NOT_NAMES

    skip = {fold(w) for w in (*NOT_NAMES, *AMBIGUOUS, *exclude)} | _TITLES | _PARTICLES
    out: set[str] = set()
    for v in values:
        if not isinstance(v, str):
            continue
        for tok in _NAME_TOKEN.findall(v):
            f = fold(tok)
            if len(f) >= 3 and f not in skip:
                out.add(f)
    return frozenset(out)


@dataclass
class RowLinker:
    """Finds each row's own identifying values (``sources``: column -> entity) in its ``targets`` cells."""

    sources: Mapping[str, str]
    targets: Sequence[str]
    dictionary: frozenset[str] | None = None
    #: short kept columns among the targets: searched only for the row's own values, and skipped in a
    #: batch where they hold few distinct values (categories cannot carry one row's identifiers)
    cell_targets: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.targets) and (bool(self.sources) or bool(self.dictionary))

    def spans(
        self, batch: pa.RecordBatch, *, columns: Mapping[str, pa.Array] | None = None
    ) -> dict[str, list[list[Span]]]:
        """Per target column, per row, the spans where the row's identifying values occur.

        ``columns`` replaces target columns (the protected output, for the residual check); the
        identifying values always come from ``batch`` (the raw rows).
        """
        n = batch.num_rows
        names = batch.schema.names
        src = _Sources()
        for c, e in self.sources.items():
            if c in names:
                src.add(link_kind(e) or "identifier", e, _as_string_array(batch.column(c)))
        tgt: list[tuple[str, list[str | None]]] = []
        for c in self.targets:
            arr = columns[c] if columns is not None and c in columns else batch.column(c) if c in names else None
            if arr is None:
                continue
            if c in self.cell_targets and n:
                distinct = pc.count_distinct(arr).as_py()
                if distinct <= max(50, n // 100) and distinct * 2 < n:
                    continue
            tgt.append((c, _as_strings(arr)))
        out: dict[str, list[list[Span]]] = {}
        with gc_paused():  # many small objects, no cycles (see gc_paused)
            rows = _RowValues.of(src, n)
            for c, texts in tgt:
                out[c] = _find_column(texts, src, rows, None if c in self.cell_targets else self.dictionary)
        return out


@dataclass
class _RowValues:
    """Per row, what `_find_row` derives from the sources on every call: digits, ZIPs, name words, initials."""

    digits: list[list[tuple[str, str]]]
    zips: list[set[str]]
    names: list[set[str]]
    initials: list[set[str]]

    @classmethod
    def of(cls, src: _Sources, n: int) -> _RowValues:
        cols = [col for col, _ in src.digits]
        ents = [e for _, e in src.digits]
        digits = [[(d, e) for d, e in zip(vals, ents, strict=True) if d] for vals in zip(*cols, strict=True)] or [
            [] for _ in range(n)
        ]
        zips = [{z for z in vals if z} for vals in zip(*src.zips, strict=True)] or [set() for _ in range(n)]
        names: list[set[str]] = [set() for _ in range(n)]
        for name_col in src.names:
            for i, toks in enumerate(name_col):
                if toks:
                    names[i].update(toks)
        return cls(digits, zips, names, [{w[0] for w in ns} for ns in names])


_ANY_CAPITAL = re.compile(f"[A-Z{_CAPITALS}]")  # the first character of every _CAP_TOKEN


def _find_column(
    texts: Sequence[str | None], src: _Sources, rows: _RowValues, dictionary: frozenset[str] | None
) -> list[list[Span]]:
    """`_find_row` for every cell of one column, each kind of source value tried over the whole column at once
    (a substring test per cell in one comprehension) and the costly steps run only on the cells they can hit.
    The spans of each cell, and their order before merging, are those `_find_row` gives."""
    n = len(texts)
    lows = [fold(t) if t else None for t in texts]
    found: list[list[Span]] = [[] for _ in range(n)]
    for col, entity in src.literals:
        for i in [i for i, (needle, low) in enumerate(zip(col, lows, strict=True)) if needle and low and needle in low]:
            low = lows[i]
            assert low is not None
            _add_literal(found[i], low, col[i] or "", entity)
    for years, values, entity in src.dates:
        for i in [i for i, (y, t) in enumerate(zip(years, texts, strict=True)) if y and t and y in t]:
            low = lows[i]
            assert low is not None
            for needle in _date_variants(values[i] or ""):
                if needle in low:
                    _add_literal(found[i], low, needle, entity)
    for i, text in enumerate(texts):
        if not text or not (rows.digits[i] or rows.zips[i]):
            continue
        # every digit run found is a substring of the cell's digits run together: a row value that is not in
        # those cannot be found (a phone number's run contains its value too)
        every = _NON_DIGIT.sub("", text)
        if len(every) >= 5 and (any(d in every for d, _ in rows.digits[i]) or any(z in every for z in rows.zips[i])):
            _add_digits(found[i], text, rows.digits[i], rows.zips[i])
    for i, text in enumerate(texts):
        if not text or not (rows.names[i] or dictionary) or not _ANY_CAPITAL.search(text):
            continue
        low = lows[i]
        assert low is not None
        # without a dictionary only the row's own name words count, and each is a substring of the folded cell
        if dictionary is None and not any(w in low for w in rows.names[i]):
            continue
        _add_names(found[i], text, low, rows.names[i], rows.initials[i], dictionary)
    if src.scripts:
        for i, text in enumerate(texts):
            if text:
                _add_caseless_names(found[i], text, src.scripts, i)
    return [merge_spans(f) if len(f) > 1 else f for f in found]


def _as_string_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return pa.array(_as_strings(arr), pa.string())


def _as_strings(arr: pa.Array | pa.ChunkedArray) -> list[str | None]:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        vals: list[str | None] = arr.to_pylist()
        return vals
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return [None] * len(arr)
    if pa.types.is_floating(t):
        return [None if v is None else (str(int(v)) if float(v).is_integer() else str(v)) for v in arr.to_pylist()]
    try:
        cast: list[str | None] = arr.cast(pa.string()).to_pylist()
        return cast
    except pa.ArrowException:
        return [None] * len(arr)
