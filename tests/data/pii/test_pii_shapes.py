"""Shapes from the held-out review: whole international addresses, birth dates with children, identifiers by
value (and surrogate keys that are not), five-digit categories, ITINs, and places named after people."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from bastion.data.pii import detect_spans, scan_table

ADDRESSES = [
    "1600 Pennsylvania Avenue NW, Washington, DC 20500",
    "Flat 3, 41 Gloucester Crescent, London, NW1 7DL",
    "Kastanienallee 12, 10435 Berlin",
    "Erich-Kästner-Weg 4-6, 04109 Leipzig",
    "12, rue des Lilas, 69003 Lyon",
    "Calle de Alcalá 48, 28014 Madrid",
    "Via Giuseppe Garibaldi, 21, 20121, Milano (MI)",
    "Prinsengracht 263, 1016 GV Amsterdam",
    "ul. Marszałkowska 10/12, 00-590 Warszawa",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_whole_address_in_text(address):
    text = f"The patient moved to {address} last spring."
    spans = [s for s in detect_spans(text) if s.entity == "STREET_ADDRESS"]
    covered = "".join(text[s.start : s.end] for s in spans)
    # number through postcode: every digit of the address is inside the span
    assert [c for c in address if c.isdigit()] == [c for c in covered if c.isdigit()]
    assert len(spans) == 1 and address.split(",")[0].split()[-1].rstrip(",") in covered


@pytest.mark.parametrize(
    "text",
    [
        "Reviewed 12 results with the family, all normal.",
        "Dose raised to 40 mg, recheck in 2 weeks.",
        "Room 12, Ward B, bed 4.",
    ],
)
def test_no_address_in_plain_sentences(text):
    assert [s for s in detect_spans(text) if s.entity == "STREET_ADDRESS"] == []


def test_address_column_of_international_one_liners_is_one_entity():
    df = pd.DataFrame({"where": ADDRESSES * 6, "n": range(len(ADDRESSES) * 6)})
    assert scan_table(df).finding("where").entity == "STREET_ADDRESS"


def test_birth_dates_with_children_under_a_neutral_name():
    rng = np.random.default_rng(5)
    today = dt.date.today()
    days = rng.integers(30, 95 * 365, 600)
    dates = [(today - dt.timedelta(days=int(d))).isoformat() for d in days]
    visits = [(today - dt.timedelta(days=int(d))).isoformat() for d in rng.integers(1, 3 * 365, 600)]
    old_events = [(today - dt.timedelta(days=int(d))).isoformat() for d in rng.integers(1, 30 * 365, 600)]
    old_events[:300] = [(today - dt.timedelta(days=int(d))).isoformat() for d in rng.integers(1, 200, 300)]
    rep = scan_table(pd.DataFrame({"d1": dates, "d2": visits, "d3": old_events}))
    assert rep.finding("d1").entity == "DATE_OF_BIRTH"
    assert rep.finding("d2").entity is None  # recent visits
    assert rep.finding("d3").entity is None  # half of them in the last months: events, not births


def test_identifiers_by_value_and_surrogate_keys():
    rng = np.random.default_rng(2)
    n = 800
    df = pd.DataFrame(
        {
            "x1": [f"H{v:07d}" for v in rng.choice(9_999_999, n, replace=False)],
            "x2": [f"MR{v:07d}" for v in rng.choice(9_999_999, n, replace=False)],
            "x3": [f"QX{v:08d}" for v in rng.choice(99_999_999, n, replace=False)],
            "patient_key": [f"P{i:07d}" for i in range(1, n + 1)],
            "x5": [f"SKU{v}" for v in rng.choice([100200, 100300, 100400], n)],
        }
    )
    rep = scan_table(df)
    assert rep.finding("x1").entity == "MEDICAL_RECORD_NUMBER"
    assert rep.finding("x2").entity == "MEDICAL_RECORD_NUMBER"
    assert rep.finding("x3").entity == "ID_NUMBER"
    assert rep.finding("patient_key").entity is None  # a sequential key, however it is named
    assert "sequential" in " ".join(rep.finding("patient_key").evidence)
    assert rep.finding("x5").entity is None


def test_five_digit_category_is_no_zip_but_zips_are():
    rng = np.random.default_rng(4)
    regions = [f"{v:05d}" for v in rng.choice(99_999, 25, replace=False)]
    zips = [f"{v:05d}" for v in rng.integers(501, 99_950, 1000)]
    rep = scan_table(pd.DataFrame({"r": rng.choice(regions, 1000), "z": zips}))
    assert rep.finding("r").entity is None
    assert rep.finding("z").entity == "US_ZIP"


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("ITIN 912-70-1234 on the W-7", "US_SSN", "912-70-1234"),
        ("tax id 987-65-4321 given", "US_SSN", "987-65-4321"),  # group 65: an ITIN group
        ("lot 987-43-4321 shipped", None, None),  # group 43 is neither SSN (9xx) nor ITIN
        ("MRN H1234567 admitted", "MEDICAL_RECORD_NUMBER", "H1234567"),
        ("chart MR7654321 pulled", "MEDICAL_RECORD_NUMBER", "MR7654321"),
    ],
)
def test_itins_and_record_numbers_in_text(text, entity, value):
    wanted = ("US_SSN", "MEDICAL_RECORD_NUMBER")
    found = [(s.entity, text[s.start : s.end]) for s in detect_spans(text) if s.entity in wanted]
    assert found == ([] if entity is None else [(entity, value)])


@pytest.mark.parametrize(
    "text",
    ["Admitted to St. Mary's Hospital overnight.", "Transferred to Mercy General for imaging.",
     "Follow-up at Johns Hopkins Hospital."],
)
def test_places_named_after_people_are_not_people(text):
    assert [s for s in detect_spans(text) if s.entity == "PERSON"] == []


def test_birth_context_stays_in_its_sentence():
    text = "nacido el <DATE_OF_BIRTH>. Labs reviewed on 30 Jul 2024: normal."
    assert [s for s in detect_spans(text) if s.entity == "DATE_OF_BIRTH"] == []
    text = "Nacido el 3 de abril de 1985. Labs reviewed on 30 Jul 2024."
    assert [text[s.start : s.end] for s in detect_spans(text) if s.entity == "DATE_OF_BIRTH"] == ["3 de abril de 1985"]
