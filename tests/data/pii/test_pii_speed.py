"""The speed paths of the PII engine give the same answers as the plain paths they replace.

- Recognizers that share a `text_gate` are searched in one combined pass: the candidates must be exactly what
  each recognizer's own ``finditer`` returns, and every match must start where its gate holds.
- Lookaheads added to text patterns only skip text faster: the pattern without them finds the same spans.
- Column classification matches distinct values once and skips recognizers that cannot win: the verdict,
  confidence and evidence must equal the plain loop over every recognizer and every cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.data.pii import _text
from bastion.data.pii._columns import _hint, classify_column, normalize_name, to_text_values
from bastion.data.pii._context_names import _APPOS_TAIL_RE
from bastion.data.pii._registry import builtin_recognizers
from bastion.data.pii.address import _TEXT_POSTCODE, StreetAddressRecognizer
from bastion.data.pii.date_of_birth import DateOfBirthRecognizer
from bastion.data.pii.email import EmailRecognizer
from bastion.data.pii.iban import IbanRecognizer
from bastion.data.pii.identifiers import MedicalRecordRecognizer
from bastion.data.pii.interface import GATE_DIGIT, ColumnFinding, Recognizer
from bastion.data.pii.ip_address import IpAddressRecognizer
from bastion.data.pii.person import _CAPS_COMMA, _INITIAL_NAME, _SEQ, _TOK, _UP
from bastion.data.pii.phone import PhoneRecognizer
from bastion.data.pii.url import UrlRecognizer

# fragments that complete into matches of most built-in patterns, and near misses of them
FRAGMENTS = (
    "123-45-6789", "123 45 6789", "912-70-1234", "123456789", "1234567890", "12345678901", "943 476 5919",
    "9434765919", "AB 12 34 56 C", "QQ123456C", "12345678Z", "X1234567L", "RSSMRA85T10A562S", "ABCPE1234F",
    "S1234567D", "1234.56.789", "123.456.789", "1 85 05 78 006 084 91", "12 345 678 901", "123.456.789-09",
    "2345 6789 0123", "4111 1111 1111 1111", "4111-1111-1111-1111", "90210", "90210-1234", "MRN 1234567",
    "MR1234567", "H1234567", "mrn:123456", "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000",
    "Hauptstraße 5", "Bahnhofstr. 12a", "Keizersgracht 123, 1015 CJ Amsterdam", "10115 Berlin",
    "12 rue de la Paix, 75002 Paris", "Calle Mayor 5, 28013 Madrid", "Via Roma 12, 00184 Roma",
    "ul. Długa 5, 00-238 Warszawa", "221B Baker Street, London NW1 6XE", "742 Evergreen Terrace",
    "Flat 3, Oak Road", "SW1A 1AA", "IL 62704", "NSW 2000", "1985-04-22", "22/04/1985", "04/22/1985",
    "April 22, 1985", "22nd April 1985", "22 de abril de 1985", "14. März 1985", "ſep 3, 1990", "192.168.0.1",
    "10.0.0.256", "2001:db8::1", "fe80::1:2", "a@b.co", "john.doe+x@mail.example.org", "x@y", "www.example.org",
    "https://ex.org/a?b=1", "ftp://h.io", "+44 20 7946 0958", "(212) 555-0100", "0049 30 123456",
    "555-0100 x12", "3.12.0.7", "Dr. Smith", "Mr. van der Meulen", "J. Grunt", "KOWALSKI, Anna", "Maria Garcia",
    "O'Brien", "McDonald", "St. Mary's Hospital", "Sven", "Date", "١٢٣٤٥", "K", "ſ", "born", "NHS", "PESEL",
    "BSN", "CPF", "SSN", "DNI", "Aadhaar", "TFN", "call", "her daughter Maria Lopez", "son, Ben",
    "Toró, the patient's sister", "Anna Kowalska (daughter)", "Jeník - carer", "spoke to", "GP Dorothea Hassing",
    "Kind regards,", "Tochter Anna", "-- Walter Stanley (FY2)", "Frau Dr. Weiß",
)  # fmt: skip
SEPARATORS = (" ", ", ", "; ", ". ", "-", "/", "\n", "", ":", " (", ") ", "'", "@", ".", "x")

texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet="0123456789 -./:ABCXYZ ab", max_size=6)), max_size=12
).flatmap(
    lambda frags: st.lists(st.sampled_from(SEPARATORS), min_size=len(frags), max_size=len(frags)).map(
        lambda seps: "".join(f + s for f, s in zip(frags, seps, strict=True))
    )
)


@pytest.fixture(scope="module")
def corpus_chunk() -> str:
    import corpus  # tests/data/pii on sys.path (conftest)

    frame = corpus.make_table(400, seed=3, neutral=True).frame
    return "\n".join([*frame.astype(str).agg(" ; ".join, axis=1).tolist(), " ".join(FRAGMENTS)])


def _gated() -> list[Recognizer]:
    return [r for r in builtin_recognizers() if r.text_gate is not None]


def _solo_spans(rec: Recognizer, text: str) -> list[tuple[int, int]]:
    return [m.span() for m in rec._compiled_text().finditer(text)]


def _check_fused(text: str, recs: Sequence[Recognizer]) -> None:
    shared = _text._shared_candidates(text, recs)
    for k, rec in enumerate(recs):
        solo = _solo_spans(rec, text)
        if rec.text_gate is not None:
            gate = re.compile(rec.text_gate)
            assert all(gate.match(text, s) for s, _ in solo), f"{type(rec).__name__}: a match starts off its gate"
        if k in shared:
            assert shared[k] == solo, type(rec).__name__


def test_builtins_share_two_gates_and_every_gated_recognizer_is_fused() -> None:
    recs = tuple(builtin_recognizers())
    fused = _text._fused(recs)
    members = sorted(k for _, ks in fused for k in ks)
    assert members == sorted(k for k, r in enumerate(recs) if r.text_gate is not None)
    assert len(fused) == 2 and len(members) >= 17


def test_fused_candidates_equal_each_recognizers_own_matches_on_the_corpus(corpus_chunk: str) -> None:
    _check_fused(corpus_chunk, builtin_recognizers())


@settings(max_examples=150, deadline=None)
@given(text=texts)
def test_fused_candidates_equal_each_recognizers_own_matches(text: str) -> None:
    _check_fused(text, builtin_recognizers())


class _Gated(Recognizer):
    entity = "TEST_GATED"
    text_gate = GATE_DIGIT
    text_pattern = r"(?<![\w-])\d{2}(?:-\d{2})?"

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return np.zeros(len(values), dtype=bool)


class _GatedEmpty(_Gated):
    entity = "TEST_EMPTY"
    # keeps its gate, yet matches empty text before a lone digit: finditer's rules differ, so it runs on its own
    text_pattern = r"(?<![\w-])(?=\d)(?:\d\d)?"


class _GatedBackref(_Gated):
    entity = "TEST_BACKREF"
    text_pattern = r"(?<![\w-])\d(\d)\1"  # a numbered group: cannot be combined


class _GatedOverride(_Gated):
    entity = "TEST_OVERRIDE"

    def find_in_text(self, text: str) -> Iterator[tuple[int, int, float]]:
        yield 0, 1, 0.9


@pytest.mark.parametrize(
    ("extra", "fused"),
    [(_Gated, True), (_GatedEmpty, False), (_GatedBackref, False), (_GatedOverride, False)],
)
def test_plugin_recognizers_are_fused_only_when_that_is_exact(extra: type[Recognizer], fused: bool) -> None:
    recs = (*builtin_recognizers(), extra())
    k = len(recs) - 1
    text = "ab 12 12-34 1-2 123 4444 x99 -55 " * 3
    shared = _text._shared_candidates(text, recs)
    assert (k in shared) == fused
    spans = _text.detect_spans_batch([text], recognizers=[recs[-1]], entities=[extra.entity])[0]
    expected = [(s, e) for s, e, sc in recs[-1].find_in_text(text) if sc >= _text.MIN_SCORE]
    assert [(sp.start, sp.end) for sp in spans] == _resolved(expected)


def _resolved(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    kept: list[tuple[int, int]] = []
    for s, e in sorted(spans, key=lambda t: (-(t[1] - t[0]), t[0])):
        if all(e <= a or s >= b for a, b in kept):
            kept.append((s, e))
    return sorted(kept)


# -- lookaheads that only speed a pattern up -------------------------------------------------------------------

# (the context-trigger pattern is one trie of all trigger words: it has no speed-only lookahead to take out)
_SPEED_ONLY = [
    ("address", StreetAddressRecognizer.text_pattern, 0,
     [r"(?=[\dA-ZÄÖÜuapo])", r"(?=[A-Za-zäöüß\-.]++ \d)", r"(?=[a-z]++ \d)"]),
    ("postcode", _TEXT_POSTCODE.pattern, 0, [r"(?=[A-Z])", r"(?=\d)"]),
    ("date of birth", DateOfBirthRecognizer.text_pattern, re.IGNORECASE, [r"(?=[\dJFMASOND])"]),
    ("ip", IpAddressRecognizer.text_pattern, 0, [r"(?=\d{1,3}\.|[0-9A-Fa-f]{0,4}:)"]),
    ("email", EmailRecognizer.text_pattern, 0, [r"(?=[\w.%+-]{1,64}+@)"]),
    ("url", UrlRecognizer.text_pattern, re.IGNORECASE, [r"(?=[hfw])"]),
    ("iban", IbanRecognizer.text_pattern, 0, [r"(?=[A-Z]{2}\d\d)"]),
    ("phone", PhoneRecognizer.text_pattern, 0, [r"(?=[\d+(])"]),
    ("mrn", MedicalRecordRecognizer.text_pattern, re.IGNORECASE, [r"(?=[mpeh])"]),
    ("person", _SEQ.pattern, 0, [None]),
    ("appositive relation", _APPOS_TAIL_RE.pattern, 0, [r"(?=,| [(\-–])"]),
]  # fmt: skip


# patterns rewritten to start with a consumed character (the lookbehinds then span it), and their plain forms
_REWRITTEN = [
    ("initial", _INITIAL_NAME, rf"(?=[A-Z])(?<![\w.])(?<!\d )[A-Z]\. ?(?P<name>{_TOK}(?: {_TOK})?)(?![\w@'’])"),
    ("caps comma", _CAPS_COMMA,
     rf"(?<![\w])(?P<last>[{_UP}]{{2,}}(?:[-' ][{_UP}]{{2,}})?), (?P<first>{_TOK})(?![\w@'’])"),
]  # fmt: skip


def test_rewritten_patterns_match_like_their_plain_forms_on_the_corpus(corpus_chunk: str) -> None:
    for name, fast, plain in _REWRITTEN:
        found = [m.regs for m in fast.finditer(corpus_chunk)]
        assert found == [m.regs for m in re.finditer(plain, corpus_chunk)], name
        assert found, name
    for text in ("A. Smith", "x A. Smith", "3 A. Smith", "3 B.Smith", ".A. Smith", "SMITH, Anna", "aSMITH, Anna",
                 "ÉLODIE, Anna", "-SMITH, Anna", "\nSMITH, Anna", "O'BRIEN, Sean", "AB, Cd"):  # fmt: skip
        for name, fast, plain in _REWRITTEN:
            assert [m.regs for m in fast.finditer(text)] == [m.regs for m in re.finditer(plain, text)], (name, text)


@settings(max_examples=120, deadline=None)
@given(text=texts)
def test_rewritten_patterns_match_like_their_plain_forms(text: str) -> None:
    for name, fast, plain in _REWRITTEN:
        assert [m.regs for m in fast.finditer(text)] == [m.regs for m in re.finditer(plain, text)], name


def _without(pattern: str, lookaheads: list[str | None]) -> str:
    out = pattern
    for la in lookaheads:
        if la is None:  # the person patterns open with a lookahead over the capital letters
            assert out.startswith("(?=[")
            out = out[out.index("])") + 2 :]
            continue
        assert la in out, la
        out = out.replace(la, "")
    return out


@pytest.mark.parametrize(("name", "pattern", "flags", "lookaheads"), _SPEED_ONLY, ids=[s[0] for s in _SPEED_ONLY])
def test_speed_lookaheads_change_no_match_on_the_corpus(
    name: str, pattern: str, flags: int, lookaheads: list[str | None], corpus_chunk: str
) -> None:
    fast, plain = re.compile(pattern, flags), re.compile(_without(pattern, lookaheads), flags)
    assert fast.pattern != plain.pattern
    found = [m.span() for m in fast.finditer(corpus_chunk)]
    assert found == [m.span() for m in plain.finditer(corpus_chunk)]
    assert found or name in ("ip", "url", "caps comma", "appositive relation"), f"{name}: the corpus should match"


@settings(max_examples=120, deadline=None)
@given(text=texts)
def test_speed_lookaheads_change_no_match(text: str) -> None:
    for _name, pattern, flags, lookaheads in _SPEED_ONLY:
        fast, plain = re.compile(pattern, flags), re.compile(_without(pattern, lookaheads), flags)
        assert [m.span() for m in fast.finditer(text)] == [m.span() for m in plain.finditer(text)], _name


# -- cells searched only where a required part is ----------------------------------------------------------------


def _cell_starts(text: str) -> list[int]:
    starts, pos = [], 0
    for cell in text.split("\n"):
        starts.append(pos)
        pos += len(cell) + 1
    return starts


def _required() -> list[Recognizer]:
    return [r for r in builtin_recognizers() if r.text_requires is not None]


def _check_required(text: str) -> None:
    for rec in _required():
        assert _text._required_candidates(text, _cell_starts(text), rec) == _solo_spans(rec, text), rec.entity


def test_required_parts_are_declared_where_they_pay() -> None:
    assert {r.entity for r in _required()} >= {"EMAIL", "URL", "IBAN", "IP_ADDRESS"}
    for rec in _required():
        assert _text._default_search(rec), rec.entity  # a custom find_in_text would bypass the filter


def test_required_cells_give_each_recognizers_own_matches_on_the_corpus(corpus_chunk: str) -> None:
    _check_required(corpus_chunk)
    # and where every cell holds a match, or only the first or the last
    for rec, sample in ((r, s) for r in _required() for s in _REQUIRED_SAMPLES[r.entity]):
        for text in (sample, f"{sample}\nno", f"no\n{sample}", f"x {sample}\n{sample} y\n\n{sample}"):
            assert _text._required_candidates(text, _cell_starts(text), rec) == _solo_spans(rec, text), text
            assert _solo_spans(rec, text), f"{rec.entity}: {sample!r} should match"


_REQUIRED_SAMPLES = {
    "EMAIL": ["a@b.co", "john.doe+x@mail.example.org"],
    "URL": ["www.example.org", "HTTPS://EX.ORG/a", "ftp://h.io", "WWW.X.COM"],
    "IBAN": ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"],
    "IP_ADDRESS": ["192.168.0.1", "2001:db8::1", "fe80::1:2", "::1"],
}


@settings(max_examples=150, deadline=None)
@given(text=texts)
def test_required_cells_give_each_recognizers_own_matches(text: str) -> None:
    _check_required(text)


def test_text_scan_uses_the_required_cells_and_finds_the_same_spans() -> None:
    cells = [
        "mail a@b.co now", "nothing here", "host 10.0.0.1 up", "see www.example.org.", "IBAN DE89370400440532013000"
    ]
    plain = [[(s.entity, s.start, s.end) for s in _text.detect_spans(c)] for c in cells]
    batch = [[(s.entity, s.start, s.end) for s in row] for row in _text.detect_spans_batch(cells)]
    assert batch == plain
    assert [{e for e, _, _ in row} for row in batch] == [{"EMAIL"}, set(), {"IP_ADDRESS"}, {"URL"}, {"IBAN"}]


def test_garbage_collection_is_paused_for_a_chunk_only() -> None:
    import gc

    seen: list[bool] = []
    real = _text._scan_chunk

    def spy(*args: object, **kwargs: object) -> None:
        seen.append(gc.isenabled())
        real(*args, **kwargs)  # type: ignore[arg-type]

    assert gc.isenabled()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_text, "_scan_chunk", spy)
        _text.detect_spans_batch(["call Anna Smith on 020 7946 0958"])
        assert seen == [False] and gc.isenabled()
        gc.disable()
        try:
            _text.detect_spans_batch(["Anna Smith"])
            assert seen == [False, False] and not gc.isenabled()  # the caller's choice is kept
        finally:
            gc.enable()

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

        mp.setattr(_text, "_scan_chunk", boom)
        with pytest.raises(RuntimeError):
            _text.detect_spans_batch(["Anna Smith"])
        assert gc.isenabled()


# -- column classification ----------------------------------------------------------------------------------------


def _plain_classify(name: str, raw: pd.Series, recs: Sequence[Recognizer]) -> ColumnFinding:
    """The classification loop without its shortcuts: every recognizer on every cell, in order."""
    values, _ = to_text_values(raw)
    if values is None or len(values) == 0:
        return classify_column(name, raw, recs).finding  # no recognizer runs on these
    values = values.reset_index(drop=True)
    norm = normalize_name(name)
    best = None
    notes: list[str] = []
    partial: tuple[float, str] = (0.0, "")
    for rec in recs:
        named = bool(rec.name_hints) and _hint(rec.name_hints, norm)
        negative = bool(rec.negative_name_hints) and _hint(rec.negative_name_hints, norm)
        if (rec.requires_name_evidence and not named) or (negative and not named):
            continue
        mask = rec.match_named(values) if named else rec.match_cells(values)
        share = float(mask.mean())
        if share < rec.min_share * (0.5 if named else 1.0):
            if share > partial[0]:
                partial = (share, str(rec.entity))
            if named and share == 0.0:
                notes.append(f"name suggests {rec.entity} but no sampled value matches")
            continue
        factor, ev = rec.refine(values, mask, named=named)
        if factor <= 0.0:
            notes.extend(ev)
            continue
        conf = min(0.99, (0.5 + 0.45 * share) * factor + (0.1 if named else 0.0))
        evidence = [f"{share:.0%} of {len(values)} sampled values match {rec.entity}"]
        if named:
            evidence.append(f"column name '{name}' suggests {rec.entity}")
        evidence.extend(ev)
        key = conf + rec.priority / 1000.0
        if best is None or key > best[0]:
            best = (key, rec, share, tuple(evidence), mask)
    if best is not None:
        key, rec, share, evidence_t, mask = best
        examples = tuple(rec.mask(v) for v in values[mask].drop_duplicates().head(3))
        conf = min(0.99, key - rec.priority / 1000.0)
        return ColumnFinding(name, str(rec.entity), "column", conf, share, evidence_t, examples)
    verdict = classify_column(name, raw, recs)
    if verdict.is_text:
        return verdict.finding
    if partial[0] > 0:
        notes.insert(0, f"at most {partial[0]:.0%} of values look like {partial[1]} (too few)")
    notes = notes or ["no entity type matches the values or the name"]
    return ColumnFinding(name, None, "none", 0.0, 0.0, tuple(dict.fromkeys(notes)))


def test_classification_shortcuts_give_the_plain_verdicts(corpus_mod: object) -> None:
    recs = builtin_recognizers()
    for neutral in (True, False):
        frame = corpus_mod.make_table(150, seed=5, neutral=neutral).frame  # type: ignore[attr-defined]
        for col in frame.columns:
            for part in (frame[col],) if neutral else (frame[col].iloc[:30],):
                assert classify_column(col, part, recs).finding == _plain_classify(col, part, recs), col


def test_classification_ties_go_to_the_recognizer_listed_first() -> None:
    class _A(Recognizer):
        entity = "TIE_A"
        priority = 10

        def match_cells(self, values: pd.Series) -> np.ndarray:
            return np.ones(len(values), dtype=bool)

    class _B(_A):
        entity = "TIE_B"

    values = pd.Series(["q1", "q2", "q1"] * 5, dtype=object)
    assert classify_column("c", values, [_A(), _B()]).finding.entity == "TIE_A"
    assert classify_column("c", values, [_B(), _A()]).finding.entity == "TIE_B"


# -- overlap resolution ---------------------------------------------------------------------------------------

candidates = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 8), st.sampled_from([0.5, 0.7, 0.9]), st.integers(0, 3)), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(cands=candidates)
def test_resolve_keeps_the_spans_the_pairwise_rule_keeps(cands: list[tuple[int, int, float, int]]) -> None:
    prios = [90, 50, 50, 30]
    ents = ["A", "B", "C", "D"]
    rows = [(s - (s + n), -prios[k], -score, s, s + n, k) for s, n, score, k in cands]
    # the rule: longest first, then priority, then score, then leftmost, then recognizer order; a span is kept
    # when it overlaps no span kept before it (an empty span overlaps a span that strictly contains its point)
    order = sorted(rows)
    kept: list[tuple[int, int, float, int, int, int]] = []
    for c in order:
        if all(c[4] <= k[3] or c[3] >= k[4] for k in kept):
            kept.append(c)
    expected = [(ents[k], s, e, -neg) for _, _, neg, s, e, k in sorted(kept, key=lambda c: c[3])]
    got = _text._resolve(list(rows), ents) if rows else []
    assert [(sp.entity, sp.start, sp.end, sp.score) for sp in got] == expected


# -- deferred verification ------------------------------------------------------------------------------------


class _Checked(Recognizer):
    """Four digits; `verify_span` (counted) accepts even numbers only."""

    entity = "TEST_CHECKED"
    priority = 10
    text_pattern = r"(?<!\d)\d{4}(?!\d)"
    calls: list[str]

    def __init__(self) -> None:
        self.calls = []

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return np.zeros(len(values), dtype=bool)

    def verify_span(self, match: str) -> bool:
        self.calls.append(match)
        return int(match) % 2 == 0


class _Claims(Recognizer):
    """Claims "1234" and "5678" with a higher priority (so the checked recognizer's same spans never win)."""

    entity = "TEST_CLAIMS"
    priority = 90
    text_pattern = r"(?<!\d)(?:1234|5678)(?!\d)"

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return np.zeros(len(values), dtype=bool)


def test_verification_is_skipped_only_where_a_higher_priority_span_is_identical() -> None:
    checked, claims = _Checked(), _Claims()
    text = "a 1234 b 5678 c 2468 d 1357 e 12345 f 9998"
    got = _text.detect_spans_batch([text], recognizers=[checked, claims], entities=["TEST_CHECKED", "TEST_CLAIMS"])[0]
    assert sorted(checked.calls) == ["1357", "2468", "9998"]  # 1234 and 5678 were never verified
    assert [(s.entity, text[s.start : s.end]) for s in got] == [
        ("TEST_CLAIMS", "1234"), ("TEST_CLAIMS", "5678"), ("TEST_CHECKED", "2468"), ("TEST_CHECKED", "9998"),
    ]  # fmt: skip
    # find_in_text on its own still verifies every candidate
    assert [text[s:e] for s, e, _ in _Checked().find_in_text(text)] == ["1234", "5678", "2468", "9998"]


def test_phone_numbers_are_still_validated_in_text() -> None:
    text = "call 111 111 1111 or +44 20 7946 0958 today"
    spans = _text.detect_spans_batch([text])[0]
    assert [(s.entity, text[s.start : s.end]) for s in spans] == [("PHONE", "+44 20 7946 0958")]
