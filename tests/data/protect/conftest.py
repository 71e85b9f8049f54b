from __future__ import annotations

import os
import re

import pandas as pd
import pytest

from bastion.crypto.keys import Keyring, LocalMasterKey
from bastion.data.pii.interface import ColumnFinding, Span, TableScanReport


def fake_detector(texts):
    """A tiny stand-in for span detection: two known names."""
    return [
        [Span("PERSON", m.start(), m.end(), 0.9) for m in re.finditer(r"Ann Lee|Bob Ray", t)] for t in texts
    ]


def fake_scan(columns: dict[str, str | None], text: tuple[str, ...] = ()) -> TableScanReport:
    found = []
    for name, entity in columns.items():
        if name in text:
            found.append(ColumnFinding(name, None, "text", 0.9, 0.5, spans_found={"PERSON": 1}))
        elif entity:
            found.append(ColumnFinding(name, entity, "column", 0.95, 1.0, masked_examples=("A** L**",)))
        else:
            found.append(ColumnFinding(name, None, "none", 0.0, 0.0))
    return TableScanReport("test", tuple(found), 4, 4)


@pytest.fixture
def keyring(tmp_path) -> Keyring:
    return Keyring(tmp_path / "data-keys.json", LocalMasterKey(os.urandom(32), source="test"))


@pytest.fixture
def people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["Ann Lee", "Bob Ray", "Ann Lee", None],
            "ssn": ["123-45-6789", "234-56-7890", None, "345-67-8901"],
            "dob": ["1984-03-02", "1990-12-31", "1984-07-07", "2001-01-01"],
            "zip": ["02139", "94105", "02141", "10001"],
            "age": [34, 51, 17, 80],
            "notes": ["Call Ann Lee at home", "nothing", None, "Bob Ray visited"],
        }
    )


PEOPLE_SCAN = {
    "name": "PERSON",
    "ssn": "US_SSN",
    "dob": "DATE_OF_BIRTH",
    "zip": "US_ZIP",
    "age": None,
    "notes": None,
}
