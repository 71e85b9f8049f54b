"""Property tests: Luhn-valid card numbers are found; random digit strings are not cards unless valid."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.data.pii import detect_spans
from bastion.data.pii._checksums import card_brand_ok, iban_valid, luhn_valid, luhn_valid_many, ssn_valid
from bastion.data.pii.credit_card import CreditCardRecognizer


def _complete(body: str) -> str:
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError(body)


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.sampled_from(["4", "51", "55", "2221", "2720", "6011", "65"]),
    rest=st.text(alphabet="0123456789", min_size=14, max_size=14),
)
def test_luhn_valid_cards_are_found(prefix, rest):
    number = _complete((prefix + rest)[:15])
    text = f"card {number[:4]} {number[4:8]} {number[8:12]} {number[12:]} charged"
    assert [s.entity for s in detect_spans(text)] == ["CREDIT_CARD"]


@settings(max_examples=80, deadline=None)
@given(digits=st.text(alphabet="0123456789", min_size=13, max_size=19))
def test_random_digits_are_cards_only_when_valid(digits):
    found = CreditCardRecognizer().match_cells(pd.Series([digits], dtype=object))[0]
    assert bool(found) == (luhn_valid(digits) and card_brand_ok(digits))


@given(st.lists(st.text(alphabet="0123456789", min_size=2, max_size=19), max_size=20))
def test_luhn_vectorised_matches_scalar(numbers):
    assert list(luhn_valid_many(numbers)) == [luhn_valid(n) for n in numbers]


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_ssn_rules(d):
    expected = d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"
    assert ssn_valid(d) == expected


@given(st.text(alphabet="0123456789", min_size=18, max_size=18))
def test_iban_single_digit_change_detected(bban):
    num = "".join(str(int(ch, 36)) for ch in bban + "DE00")
    iban = f"DE{98 - int(num) % 97:02d}{bban}"
    assert iban_valid(iban)
    flipped = iban[:-1] + str((int(iban[-1]) + 1) % 10)
    assert not iban_valid(flipped)
