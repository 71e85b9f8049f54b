"""National identifiers: each checksum agrees with python-stdnum (an independent implementation), each
recognizer finds its identifier in columns and text, and near misses (bad check digit, no context) are not."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.au import tfn
from stdnum.br import cpf
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel

from bastion.data.pii import _national as nat
from bastion.data.pii import detect_spans, scan_table

CHECKS = [
    (nat.nhs_valid, nhs.is_valid, 10),
    (nat.tfn_valid, tfn.is_valid, 9),
    (nat.bsn_valid, bsn.is_valid, 9),
    (nat.cpf_valid, cpf.is_valid, 11),
    (nat.pesel_valid, pesel.is_valid, 11),
    (nat.steuer_id_valid, idnr.is_valid, 11),
    (nat.aadhaar_valid, aadhaar.is_valid, 12),
]


@pytest.mark.parametrize(("mine", "ref", "length"), CHECKS, ids=[c[0].__name__ for c in CHECKS])
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_digit_checksums_agree_with_stdnum(mine, ref, length, data):
    v = data.draw(st.text(alphabet="0123456789", min_size=length, max_size=length))
    assert mine(v) == ref(v)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 99_999_999), prefix=st.sampled_from("XYZ"), letter=st.sampled_from("ABCDEFGHJKLMNPQRSTVWXYZ"))
def test_spanish_letters_agree_with_stdnum(n, prefix, letter):
    assert nat.dni_valid(f"{n:08d}{letter}") == dni.is_valid(f"{n:08d}{letter}")
    v = f"{prefix}{n % 10_000_000:07d}{letter}"
    assert nat.nie_valid(v) == nie.is_valid(v)


def test_fiscal_codes_from_stdnum_examples():
    for v in ("RSSMRA85T10A562S", "MRTMTT91D08F205J", "ABCDEF12B23P432P"):
        assert nat.fiscal_code_valid(v) == codicefiscale.is_valid(v)
    assert nat.fiscal_code_valid("RSSMRA85T10A562S") and not nat.fiscal_code_valid("RSSMRA85T10A562T")


VALID = {
    "UK_NHS": ("NHS number 943 476 5919", "943 476 5919"),
    "UK_NINO": ("NI number AB 12 34 56 C on file", "AB 12 34 56 C"),
    "ES_NIF": ("con DNI 12345678Z.", "12345678Z"),
    "ES_NIE": ("NIE X1234567L", "X1234567L"),
    "IT_FISCAL_CODE": ("codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
    "PL_PESEL": ("PESEL 44051401458", "44051401458"),
    "NL_BSN": ("BSN 111222333", "111222333"),
    "FR_NIR": ("n° sécu 2 84 12 76 451 089 93", "2 84 12 76 451 089 93"),
    "DE_TAX_ID": ("Steuer-ID 36 574 261 809", "36 574 261 809"),
    "BR_CPF": ("CPF 123.456.789-09", "123.456.789-09"),
    "IN_AADHAAR": ("Aadhaar 2345 6789 0124", "2345 6789 0124"),
    "IN_PAN": ("PAN ABCPD1234E", "ABCPD1234E"),
    "AU_TFN": ("TFN 123 456 782", "123 456 782"),
    "SG_NRIC": ("NRIC S1234567D", "S1234567D"),
}


@pytest.mark.parametrize("entity", sorted(VALID))
def test_found_in_text(entity):
    text, value = VALID[entity]
    assert [(s.entity, text[s.start : s.end]) for s in detect_spans(text)] == [(entity, value)]


@pytest.mark.parametrize(
    "text",
    [
        "NHS number 943 476 5918",  # wrong check digit
        "ref 111222333 now",  # 11-proof digits without a word naming a BSN
        "order 44051401458 shipped",  # PESEL-valid digits, no context
        "DNI 12345678A",  # wrong control letter
        "ref BG 12 34 56 C",  # unallocated NINO prefix
        "ref QQ 12 34 56 C",  # the example prefix, never issued
        "code RSSMRA85T10A562T",  # wrong check letter
        "ITIN-like 36574261809 lot",
    ],
)
def test_near_misses_in_text(text):
    # a 3-3-4 run is still a phone number; it is just no NHS number
    assert not {s.entity for s in detect_spans(text)} & set(VALID)


def test_columns_by_value_without_names():
    df = pd.DataFrame(
        {
            "a": ["12345678Z", "87654321X", "00000000T", "11111111H", "22222222J"] * 8,
            "b": ["QQ123456C", "AB654321A", "JG103759A", "PE123456B", "SX987654D"] * 8,
            "c": ["RSSMRA85T10A562S", "MRTMTT91D08F205J"] * 20,
            "d": [str(10_000_000_000 + 7919 * i) for i in range(40)],  # 11 digits, mostly failing every check
        }
    )
    rep = scan_table(df)
    assert rep.finding("a").entity == "ES_NIF"
    assert rep.finding("b").entity == "UK_NINO"
    assert rep.finding("c").entity == "IT_FISCAL_CODE"
    assert rep.finding("d").entity is None
