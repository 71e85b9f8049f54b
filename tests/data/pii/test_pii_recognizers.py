"""Table-driven recognizer tests: good and decoy rows side by side, in cells and in text."""

from __future__ import annotations

import pandas as pd
import pytest

from bastion.data.pii import detect_spans
from bastion.data.pii._registry import recognizer_for

CELLS = [
    ("EMAIL", "jane.doe@example.com", True),
    ("EMAIL", "not an email@", False),
    ("URL", "https://www.example.org/path?q=1", True),
    ("URL", "jane.doe@example.com", False),
    ("US_SSN", "123-45-6789", True),
    ("US_SSN", "000-12-3456", False),
    ("US_SSN", "666-12-3456", False),
    ("US_SSN", "912-34-5678", False),
    ("US_SSN", "123-00-4567", False),
    ("US_SSN", "123-45-0000", False),
    ("CREDIT_CARD", "4111 1111 1111 1111", True),
    ("CREDIT_CARD", "5555555555554444", True),
    ("CREDIT_CARD", "2221000000000009", True),
    ("CREDIT_CARD", "2720990000000007", True),
    ("CREDIT_CARD", "378282246310005", True),
    ("CREDIT_CARD", "6011111111111117", True),
    ("CREDIT_CARD", "4111111111111112", False),
    ("CREDIT_CARD", "1234567812345670", False),
    ("IBAN", "DE89 3704 0044 0532 0130 00", True),
    ("IBAN", "GB82WEST12345698765432", True),
    ("IBAN", "FR1420041010050500013M02606", True),
    ("IBAN", "DE89 3704 0044 0532 0130 01", False),
    ("IP_ADDRESS", "192.168.10.25", True),
    ("IP_ADDRESS", "2001:db8::8a2e:370:7334", True),
    ("IP_ADDRESS", "256.1.1.1", False),
    ("PHONE", "+44 20 7946 0958", True),
    ("PHONE", "+49 30 901820", True),
    ("PHONE", "+33 1 42 68 53 00", True),
    ("PHONE", "(212) 555-0100", True),
    ("PHONE", "2023-04-05", False),
    ("PHONE", "12", False),
    ("STREET_ADDRESS", "742 Evergreen Terrace, Springfield, IL 62704", True),
    ("STREET_ADDRESS", "Hauptstraße 12, 10115 Berlin", True),
    ("STREET_ADDRESS", "12 rue de la Paix, 75002 Paris", True),
    ("STREET_ADDRESS", "Widget Pro 3000", False),
    ("MEDICAL_RECORD_NUMBER", "MRN-00123456", True),
    ("MEDICAL_RECORD_NUMBER", "ORD-00123456", False),
    ("US_ZIP", "02139", True),
    ("US_ZIP", "2139", False),
]


@pytest.mark.parametrize(("entity", "value", "expected"), CELLS)
def test_cell_matching(entity, value, expected):
    rec = recognizer_for(entity)
    assert rec is not None
    assert bool(rec.match_cells(pd.Series([value], dtype=object))[0]) is expected


TEXTS = [
    ("Please email jane.doe@example.com today.", "EMAIL", "jane.doe@example.com"),
    ("Card 2221 0000 0000 0009 was charged.", "CREDIT_CARD", "2221 0000 0000 0009"),
    ("Wire to DE89 3704 0044 0532 0130 00 for the refund.", "IBAN", "DE89 3704 0044 0532 0130 00"),
    ("Wire to DE89370400440532013000 IBAN confirmed.", "IBAN", "DE89370400440532013000"),
    ("Login from IP 10.0.0.5 failed.", "IP_ADDRESS", "10.0.0.5"),
    ("SSN 123-45-6789 on file.", "US_SSN", "123-45-6789"),
    ("She was born on 1980-03-04 in Ohio.", "DATE_OF_BIRTH", "1980-03-04"),
    ("DOB: 03/04/1980.", "DATE_OF_BIRTH", "03/04/1980"),
    ("Call +44 20 7946 0958 after six.", "PHONE", "+44 20 7946 0958"),
    ("See https://example.org/a/b. Thanks", "URL", "https://example.org/a/b"),
    ("Patient Maria Garcia reported pain.", "PERSON", "Maria Garcia"),
    ("Dr. Oluwaseun Adeyemi reviewed it.", "PERSON", "Oluwaseun Adeyemi"),
    ("Chart MRN 00123456 updated.", "MEDICAL_RECORD_NUMBER", "MRN 00123456"),
    ("Ship to zip code 02139 please.", "US_ZIP", "02139"),
]


@pytest.mark.parametrize(("text", "entity", "value"), TEXTS)
def test_text_spans(text, entity, value):
    spans = detect_spans(text)
    assert (entity, value) in [(s.entity, text[s.start : s.end]) for s in spans]


DECOY_TEXTS = [
    "The visit on 2023-04-05 was routine.",
    "Upgrade to version 3.12.0.7 tonight.",
    "Lot 912-34-5678 passed QA.",
    "Order 4839201746 was shipped.",
    "Reference 4111111111111112 failed.",
    "Write to jane.doe@example.com now.",
]


@pytest.mark.parametrize("text", DECOY_TEXTS)
def test_decoy_texts(text):
    entities = {s.entity for s in detect_spans(text)}
    assert not entities & {"DATE_OF_BIRTH", "IP_ADDRESS", "US_SSN", "PHONE", "CREDIT_CARD", "URL"}


def test_email_is_not_also_url():
    spans = detect_spans("mail jane.doe@example.com or visit www.example.com")
    assert [s.entity for s in spans] == ["EMAIL", "URL"]


def test_entities_filter():
    spans = detect_spans("Patient Maria Garcia, SSN 123-45-6789", entities=["US_SSN"])
    assert [s.entity for s in spans] == ["US_SSN"]


def test_masks_keep_shape_not_value():
    assert recognizer_for("US_SSN").mask("123-45-6789") == "***-**-6789"
    assert recognizer_for("PERSON").mask("John Smith") == "J*** S****"
