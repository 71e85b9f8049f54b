"""Checksums and validity rules used by the recognizers (Luhn, IBAN mod-97, SSN ranges).

The `*_many` forms work over arrays of candidates at once with numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "IBAN_LENGTHS",
    "card_brand_ok",
    "iban_valid",
    "iban_valid_many",
    "itin_valid",
    "luhn_valid",
    "luhn_valid_many",
    "ssn_valid",
]

# ISO 13616 lengths for the countries most often seen (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


def luhn_valid(number: str) -> bool:
    """Luhn check of a digit string (separators must already be removed)."""
    return bool(luhn_valid_many([number])[0])


def luhn_valid_many(numbers: Sequence[str]) -> np.ndarray:
    """Luhn check over many digit strings at once (grouped by length, numpy per group)."""
    out = np.zeros(len(numbers), dtype=bool)
    if not numbers:
        return out
    lengths = np.fromiter((len(n) for n in numbers), dtype=np.int64, count=len(numbers))
    for length in np.unique(lengths):
        if length < 2:
            continue
        idx = np.flatnonzero(lengths == length)
        raw = "".join(numbers[int(i)] for i in idx).encode("ascii", "replace")
        digits = np.frombuffer(raw, dtype=np.uint8).reshape(len(idx), int(length)).astype(np.int64) - 48
        good = ((digits >= 0) & (digits <= 9)).all(axis=1)
        digits = np.clip(digits, 0, 9)
        # double every second digit from the right
        doubled = digits[:, ::-1].copy()
        doubled[:, 1::2] *= 2
        doubled[doubled > 9] -= 9
        out[idx] = good & (doubled.sum(axis=1) % 10 == 0)
    return out


def card_brand_ok(digits: str) -> bool:
    """True when the prefix and length belong to a card network (Visa, Mastercard incl. 2221-2720,
    Amex, Discover, Diners, JCB)."""
    n = len(digits)
    if n < 13 or n > 19:
        return False
    p2 = int(digits[:2])
    p4 = int(digits[:4])
    p3 = int(digits[:3])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if digits.startswith("6011") or p2 == 65 or 644 <= p3 <= 649 or 622126 <= int(digits[:6]) <= 622925:
        return 16 <= n <= 19
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):
        return 14 <= n <= 19
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19
    return False


def iban_valid(value: str) -> bool:
    """ISO 13616 check: known country, its exact length, and mod-97 == 1."""
    s = value.replace(" ", "").upper()
    if len(s) < 15 or not s.isalnum() or not s.isascii():
        return False
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    num = "".join(str(int(ch, 36)) for ch in moved)
    return int(num) % 97 == 1


def iban_valid_many(values: Sequence[str]) -> np.ndarray:
    """`iban_valid` over many candidates (candidates are few; the regex did the bulk work)."""
    return np.fromiter((iban_valid(v) for v in values), dtype=bool, count=len(values))


def ssn_valid(digits: str) -> bool:
    """US SSN issuance rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9":
        return False
    return group != "00" and serial != "0000"


def itin_valid(digits: str) -> bool:
    """US ITIN: 9 digits, area 9xx, group 50-65, 70-88, 90-92 or 94-99."""
    if len(digits) != 9 or not digits.isdigit() or digits[0] != "9":
        return False
    g = int(digits[3:5])
    return 50 <= g <= 65 or 70 <= g <= 88 or 90 <= g <= 92 or 94 <= g <= 99
