"""Row linkage: a row's own identifying values found again in its other cells, however they are spelled,
and the table's name column as a dictionary for all its text; plus the residual check that re-scans."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from bastion.data.pii.interface import Span
from bastion.data.protect import protect
from bastion.data.protect._linkage import RowLinker, fold, merge_spans, name_dictionary

from .conftest import fake_scan

SOURCES = {
    "name": "PERSON",
    "ssn": "US_SSN",
    "phone": "PHONE",
    "email": "EMAIL",
    "mrn": "MEDICAL_RECORD_NUMBER",
    "dob": "DATE_OF_BIRTH",
    "address": "STREET_ADDRESS",
}
ROW = {
    "name": "Oluwaseun Mthembu-Okoro",
    "ssn": "123-45-6789",
    "phone": "+1 (212) 555-0143",
    "email": "O.Mthembu@Example.org",
    "mrn": "H1234567",
    "dob": "1984-03-02",
    "address": "17 Quayside Crescent, Port Elling, ME 04101",
}


def _find(note: str, row: dict[str, str] | None = None, dictionary: frozenset[str] | None = None) -> list[str]:
    values = dict(row or ROW)
    batch = pa.RecordBatch.from_pylist([{**values, "note": note}])
    spans = RowLinker(SOURCES, ["note"], dictionary).spans(batch)["note"][0]
    return [f"{s.entity}:{note[s.start:s.end]}" for s in spans]


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        ("Seen: Oluwaseun Mthembu-Okoro today.", ["PERSON:Oluwaseun Mthembu-Okoro"]),
        ("MTHEMBU-OKORO, Oluwaseun attended.", ["PERSON:MTHEMBU-OKORO, Oluwaseun"]),
        ("Dr saw O. Mthembu-Okoro at noon", ["PERSON:O. Mthembu-Okoro"]),
        ("Oluwaseun's mother called.", ["PERSON:Oluwaseun's"]),
        ("ssn 123 45 6789 on file", ["US_SSN:123 45 6789"]),
        ("ssn 123456789 on file", ["US_SSN:123456789"]),
        ("call 212.555.0143 after 5", ["PHONE:212.555.0143"]),
        ("write to o.mthembu@example.ORG", ["EMAIL:o.mthembu@example.ORG"]),
        ("chart H-1234567 reviewed", ["MEDICAL_RECORD_NUMBER:H-1234567"]),
        ("record 1234567 reviewed", ["MEDICAL_RECORD_NUMBER:1234567"]),
        ("born March 2, 1984 in town", ["DATE_OF_BIRTH:March 2, 1984"]),
        ("nacido el 2 de marzo de 1984.", ["DATE_OF_BIRTH:2 de marzo de 1984"]),
        ("geboren am 2. März 1984", ["DATE_OF_BIRTH:2. März 1984"]),
        ("dob 02/03/1984 per id", ["DATE_OF_BIRTH:02/03/1984"]),
        ("lives at 17 Quayside Crescent near the docks", ["STREET_ADDRESS:17 Quayside Crescent"]),
        (
            "letter to 17 quayside crescent, port elling, me 04101.",
            ["STREET_ADDRESS:17 quayside crescent, port elling, me 04101"],
        ),
    ],
)
def test_row_values_are_found_in_any_spelling(note, expected):
    assert _find(note) == expected


@pytest.mark.parametrize(
    "note",
    [
        "He will call tomorrow about the 1984 results.",  # no capitalised own name, no full date
        "Joann Mthembus visited",  # name inside longer words is not the name
        "lot 9123456789 shipped",  # the SSN digits inside a longer run
        "room 17 on the Quayside",  # a house number and a street word apart
        "code 12345 and 6789",
    ],
)
def test_near_misses_are_not_linked(note):
    assert _find(note) == []


def test_diacritics_are_folded():
    row = {**ROW, "name": "José Núñez"}
    assert _find("Spoke with JOSE NUNEZ.", row) == ["PERSON:JOSE NUNEZ"]
    assert _find("Spoke with José Núñez.", row) == ["PERSON:José Núñez"]
    assert fold("Núñez") == "nunez" and len(fold("Straße")) == len("Straße")


def test_a_letter_whose_lower_case_is_longer_does_not_unfold_the_note():
    # "İ".lower() is two characters; the fold once fell back to the raw text for the whole note
    row = {**ROW, "name": "Gökdeniz Atan"}
    note = "Thank you for seeing Gökdeniz Atan. Lives with her fiancée İltan."
    assert _find(note, row) == ["PERSON:Gökdeniz Atan"]
    assert len(fold(note)) == len(note) and fold("İltan") == "iltan"


@pytest.mark.parametrize("name", ["Şule Yıldız", "Łukasz Żurawski", "Šárka Řezníčková", "Ольга Петрова"])
def test_names_starting_with_capitals_beyond_latin_1_are_linked(name):
    row = {**ROW, "name": name}
    assert _find(f"Seen today: {name}, stable.", row) == [f"PERSON:{name}"]


def test_the_name_column_is_a_dictionary_for_every_row():
    rows = [
        {**ROW, "name": "Thandiwe Kahananui", "note": "Visit by her brother Keoni Mthembu."},
        {**ROW, "name": "Keoni Mthembu", "note": "Routine. Will call back."},
    ]
    batch = pa.RecordBatch.from_pylist(rows)
    dictionary = name_dictionary(r["name"] for r in rows)
    spans = RowLinker(SOURCES, ["note"], dictionary).spans(batch)["note"]
    note = rows[0]["note"]
    assert [note[s.start : s.end] for s in spans[0]] == ["Keoni Mthembu"]
    assert spans[1] == []  # "Will" is a word, and ambiguous names never enter the dictionary
    assert "will" not in name_dictionary(["Will Smith"])


def test_merge_spans_takes_the_union_typed_by_the_longest():
    merged = merge_spans([Span("PERSON", 0, 5, 0.9), Span("STREET_ADDRESS", 3, 20, 1.0), Span("EMAIL", 25, 30, 1.0)])
    assert [(s.entity, s.start, s.end) for s in merged] == [("STREET_ADDRESS", 0, 20), ("EMAIL", 25, 30)]


def _people(n: int = 60) -> pd.DataFrame:
    first = ["Oluwaseun", "Thandiwe", "Xiaoming", "Radomir", "Keoni", "Anahera"]
    last = ["Mthembu", "Quispe", "Kahananui", "Ngata", "Tesfaye", "Bekele"]
    names = [f"{first[i % 6]} {last[(i // 6) % 6]}" for i in range(n)]
    return pd.DataFrame(
        {
            "patient": names,
            "ssn": [f"{100 + i:03d}-{10 + i % 80:02d}-{2000 + i:04d}" for i in range(n)],
            "notes": [f"{nm.split()[1]}, {nm.split()[0][0]}. reviewed; ssn {100 + i}{10 + i % 80:02d}{2000 + i}."
                      for i, nm in enumerate(names)],
            "contact": [f"next of kin {nm.split()[1]} (sister, {i})" for i, nm in enumerate(names)],
        }
    )


def test_protect_closes_the_leak_without_any_detector(keyring):
    df = _people()
    out, rep = protect(
        df,
        None,
        keyring=keyring,
        scan=fake_scan({"patient": "PERSON", "ssn": "US_SSN", "notes": None, "contact": None}, ("notes",)),
        detector=lambda texts: [[] for _ in texts],
    )
    for i, row in df.iterrows():
        last = row["patient"].split()[1]
        assert last not in out["notes"][i] and last not in out["contact"][i]
        assert row["ssn"].replace("-", "") not in out["notes"][i]
    assert out["notes"][0] == "<PERSON> reviewed; ssn <US_SSN>."
    assert rep.linked["notes"] == 2 * len(df) and rep.linked["contact"] == len(df)
    assert rep.residual_identifiers == 0


def test_residual_check_counts_what_the_policy_keeps(keyring):
    df = _people()
    scan = fake_scan({"patient": "PERSON", "ssn": "US_SSN", "notes": None, "contact": None}, ("notes",))
    none = lambda texts: [[] for _ in texts]  # noqa: E731
    _, rep = protect(df, {"entities": {"US_SSN": "keep"}}, keyring=keyring, scan=scan, detector=none)
    assert rep.residual == {"ssn": {"US_SSN": len(df)}} and rep.residual_identifiers == len(df)
    _, rep = protect(df, {"text": {"PERSON": "keep"}}, keyring=keyring, scan=scan, detector=none)
    assert rep.residual["notes"] == {"PERSON": len(df)} and "contact" in rep.residual
    assert rep.to_dict()["residual_identifiers"] == rep.residual_identifiers > 0


def test_residual_check_ignores_tokens_and_placeholders(keyring):
    df = _people()
    scan = fake_scan({"patient": "PERSON", "ssn": "US_SSN", "notes": None, "contact": None}, ("notes",))
    _, rep = protect(df, {"text": {"default": "tokenize"}}, keyring=keyring, scan=scan)
    assert rep.residual_identifiers == 0
    assert rep.stats["seconds_linkage"] >= 0


def test_dictionary_names_inside_place_names_are_places():
    rows = [
        {**ROW, "name": "Ada Hopkins", "note": "Referred to Johns Hopkins Hospital."},
        {**ROW, "name": "Bo Stone", "note": "Seen at Johns Hopkins Hospital; Ada Hopkins is her aunt."},
    ]
    batch = pa.RecordBatch.from_pylist(rows)
    spans = RowLinker(SOURCES, ["note"], name_dictionary(r["name"] for r in rows)).spans(batch)["note"]
    # the row's own name is protected even there; another row's name inside a place name is not
    assert [rows[0]["note"][s.start : s.end] for s in spans[0]] == ["Hopkins"]
    assert [rows[1]["note"][s.start : s.end] for s in spans[1]] == ["Ada Hopkins"]


def test_linkage_by_column_finds_what_the_row_by_row_reference_finds():
    """`RowLinker.spans` tries each kind of value over a whole column at once and skips cells that cannot hold
    it; per cell it must give exactly what the plain per-row search (`_find_row`) gives."""
    import random

    from bastion.data.protect._linkage import _find_row, _Sources, link_kind

    sources = {**SOURCES, "phone2": "PHONE", "zip": "US_ZIP", "nid": "UK_NHS"}
    people = [
        ROW,
        {**ROW, "name": "José Núñez", "phone": "0049 30 1234567", "ssn": "", "dob": "02/03/1984"},
        {**ROW, "name": "Keoni Mthembu", "mrn": None, "email": "k@x.io", "address": "Hauptstraße 5, 10115 Berlin"},
        {**ROW, "name": "Anna Lee", "phone": "212-555-0100", "dob": "March 2, 1984", "address": ""},
    ]
    shapes = [
        "Seen: {name} today, ssn {ssn}, call {phone} or 1 {phone}; zip {zip}.",
        "{NAME}, dob {dob}; NHS {nid} — lives at {address}. Mail {email}.",
        "code 12345 and 6789, lot 9123456789, room 17 on the Quayside",
        "Spoke with Anna Lee and Keoni Mthembu at Johns Hopkins Hospital; {name}'s mother called.",
        "", "no capitals or digits here", "ANNA LEE 555 0100 x12 (212) 555-0100 2125550100 +44 20 7946 0958",
    ]
    rnd = random.Random(5)
    rows = []
    for i in range(120):
        p = dict(rnd.choice(people))
        p["phone2"] = rnd.choice(["+1 212 555 0143", None, "5550143"])
        p["zip"] = rnd.choice(["04101", "10115", None])
        p["nid"] = rnd.choice(["943 476 5919", "9434765919", ""])
        other = rnd.choice(people)
        note = " ".join(rnd.choice(shapes) for _ in range(3)).format(
            **{k: (v or "") for k, v in p.items()}, NAME=str(p["name"]).upper()
        ) + f" also {other['name']} {other['phone']}"
        short = rnd.choice([str(p["name"]).split()[0], "04101", str(p["phone"]), "Red", "", None, "ID 943-476-5919"])
        short = f"{short} {i}" if short is not None and i % 2 else short  # distinct enough not to be a category
        rows.append({**p, "note": note, "short": short})
    batch = pa.RecordBatch.from_pylist(rows)
    dictionary = name_dictionary(r["name"] for r in rows)
    src = _Sources()
    for c, e in sources.items():
        values = [None if v is None else str(v) for v in batch.column(c).to_pylist()]
        src.add(link_kind(e) or "identifier", e, pa.array(values, pa.string()))
    for dic in (dictionary, None):
        got = RowLinker(sources, ["note", "short"], dic, cell_targets=frozenset({"short"})).spans(batch)
        for col, d in (("note", dic), ("short", None)):
            texts = batch.column(col).to_pylist()
            want = [_find_row(t, src, i, d) if t else [] for i, t in enumerate(texts)]
            assert got[col] == want, col
        assert sum(len(x) for x in got["note"]) > 200 and sum(len(x) for x in got["short"]) > 10  # not vacuous
