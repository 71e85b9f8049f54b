"""Checksums and validity rules of national identifiers (UK NHS and NINO, Spanish DNI/NIE, Italian codice
fiscale, Polish PESEL, Dutch BSN, French NIR, German Steuer-ID, Brazilian CPF, Indian Aadhaar and PAN,
Australian TFN, Singapore NRIC). Each takes the value with separators already removed (upper case)."""

from __future__ import annotations

import datetime as _dt
import re

__all__ = [
    "aadhaar_valid",
    "bsn_valid",
    "cpf_valid",
    "dni_valid",
    "fiscal_code_valid",
    "nhs_valid",
    "nie_valid",
    "nino_valid",
    "nir_valid",
    "nric_valid",
    "pan_valid",
    "pesel_valid",
    "steuer_id_valid",
    "tfn_valid",
]

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def nhs_valid(v: str) -> bool:
    """UK NHS number: 10 digits, mod-11 check digit (weights 10..2); a remainder giving 10 is invalid."""
    if len(v) != 10 or not v.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(v[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(v[9])


_NINO = re.compile(r"(?!BG|GB|NK|KN|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")


def nino_valid(v: str) -> bool:
    """UK National Insurance number: allocated prefix letters, six digits, suffix A-D."""
    return bool(_NINO.fullmatch(v))


def dni_valid(v: str) -> bool:
    """Spanish DNI/NIF: 8 digits and the mod-23 control letter."""
    return len(v) == 9 and v[:8].isdigit() and v[8] == _DNI_LETTERS[int(v[:8]) % 23]


def nie_valid(v: str) -> bool:
    """Spanish NIE: X/Y/Z, 7 digits and the control letter (X=0, Y=1, Z=2 before the digits)."""
    if len(v) != 9 or v[0] not in "XYZ" or not v[1:8].isdigit():
        return False
    return v[8] == _DNI_LETTERS[int(str("XYZ".index(v[0])) + v[1:8]) % 23]


_CF_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14,
         16, 10, 22, 25, 24, 23],
        strict=True,
    )
)  # fmt: skip
_CF = re.compile(
    r"[A-Z]{6}[\dLMNPQRSTUV]{2}[ABCDEHLMPRST][\dLMNPQRSTUV]{2}[A-Z][\dLMNPQRSTUV]{3}[A-Z]"
)


def fiscal_code_valid(v: str) -> bool:
    """Italian codice fiscale: the 16-character shape (omocodia letters allowed) and its check letter."""
    if len(v) != 16 or not _CF.fullmatch(v):
        return False
    total = 0
    for i, ch in enumerate(v[:15]):
        if i % 2 == 0:
            total += _CF_ODD[ch]
        else:
            total += int(ch) if ch.isdigit() else ord(ch) - 65
    return v[15] == chr(65 + total % 26)


def pesel_valid(v: str) -> bool:
    """Polish PESEL: 11 digits, a real birth date (century in the month) and the weighted check digit."""
    if len(v) != 11 or not v.isdigit():
        return False
    weights = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
    if (10 - sum(int(d) * w for d, w in zip(v, weights, strict=False)) % 10) % 10 != int(v[10]):
        return False
    yy, mm, dd = int(v[0:2]), int(v[2:4]), int(v[4:6])
    base = (mm - 1) // 20 * 20
    century = {0: 1900, 20: 2000, 40: 2100, 60: 2200, 80: 1800}[base] if 1 <= mm <= 92 else None
    if century is None:
        return False
    try:
        _dt.date(century + yy, mm - base, dd)
    except ValueError:
        return False
    return True


def bsn_valid(v: str) -> bool:
    """Dutch BSN: 9 digits passing the 11-test (weights 9..2 and -1), not all zeros."""
    if len(v) != 9 or not v.isdigit() or v == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(v, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True))
    return total % 11 == 0


def nir_valid(v: str) -> bool:
    """French NIR (social security number): sex digit, 12 more digits (2A/2B for Corsica), key 97 - n mod 97."""
    if len(v) != 15 or v[0] not in "12378":
        return False
    body = v[:13]
    if body[5:7] in ("2A", "2B"):
        body = body[:5] + ("19" if body[6] == "A" else "18") + body[7:]
    if not body.isdigit() or not v[13:].isdigit():
        return False
    month = int(body[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    return 97 - int(body) % 97 == int(v[13:])


def steuer_id_valid(v: str) -> bool:
    """German tax ID (Steuer-ID): 11 digits, no leading zero, one digit repeated in the first ten, and the
    ISO 7064 MOD 11,10 check digit."""
    if len(v) != 11 or not v.isdigit() or v[0] == "0":
        return False
    counts = [v[:10].count(d) for d in set(v[:10])]
    if sum(1 for c in counts if c > 1) != 1 or max(counts) > 3:
        return False
    product = 10
    for d in v[:10]:
        total = (int(d) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(v[10])


def cpf_valid(v: str) -> bool:
    """Brazilian CPF: 11 digits (not all equal) with two mod-11 check digits."""
    if len(v) != 11 or not v.isdigit() or len(set(v)) == 1:
        return False
    for n in (9, 10):
        total = sum(int(d) * w for d, w in zip(v[:n], range(n + 1, 1, -1), strict=True))
        check = (total * 10) % 11 % 10
        if check != int(v[n]):
            return False
    return True


_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)  # fmt: skip
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)  # fmt: skip


def aadhaar_valid(v: str) -> bool:
    """Indian Aadhaar: 12 digits, first not 0 or 1, not a palindrome, Verhoeff checksum."""
    if len(v) != 12 or not v.isdigit() or v[0] in "01" or v == v[::-1]:
        return False
    c = 0
    for i, d in enumerate(reversed(v)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(d)]]
    return c == 0


_PAN = re.compile(r"[A-Z]{3}[ABCFGHLJPTK][A-Z]\d{4}[A-Z]")


def pan_valid(v: str) -> bool:
    """Indian PAN: five letters (the fourth says the holder type), four digits, a letter."""
    return bool(_PAN.fullmatch(v))


def tfn_valid(v: str) -> bool:
    """Australian tax file number: 9 digits (8 for old ones) with the weighted mod-11 check."""
    if not v.isdigit() or len(v) not in (8, 9):
        return False
    weights = (1, 4, 3, 7, 5, 8, 6, 9, 10) if len(v) == 9 else (10, 7, 8, 4, 6, 3, 5, 1)
    return sum(int(d) * w for d, w in zip(v, weights, strict=True)) % 11 == 0


def nric_valid(v: str) -> bool:
    """Singapore NRIC/FIN: S/T/F/G/M, 7 digits and the check letter."""
    if len(v) != 9 or v[0] not in "STFGM" or not v[1:8].isdigit() or not v[8].isalpha():
        return False
    total = sum(int(d) * w for d, w in zip(v[1:8], (2, 7, 6, 5, 4, 3, 2), strict=True))
    if v[0] in "TG":
        total += 4
    elif v[0] == "M":
        total += 3
    r = total % 11
    if v[0] in "ST":
        return v[8] == "JZIHGFEDCBA"[r]
    if v[0] in "FG":
        return v[8] == "XWUTRQPNMLK"[r]
    return v[8] == "KLJNPQRTUWX"[10 - r]
