"""Demo identities: deterministic, valid-format, consistent with age, and found by the scanner."""

from __future__ import annotations

import pandas as pd

from bastion.data.pii import scan_table
from bastion.data.pii._checksums import ssn_valid
from bastion.demo.identities import IDENTITY_COLUMNS, attach_identities, load_raw_demo_table


def test_deterministic_and_complete():
    a = load_raw_demo_table(300)
    b = load_raw_demo_table(300)
    pd.testing.assert_frame_equal(a, b)
    assert set(IDENTITY_COLUMNS) <= set(a.columns)
    assert not attach_identities(a.iloc[:, :15], seed=1)["patient_name"].equals(a["patient_name"])


def test_values_are_valid_and_consistent():
    df = load_raw_demo_table(500)
    assert df["ssn"].str.replace("-", "").map(ssn_valid).all()
    assert df["email"].str.endswith((".example.com", "@example.com", "@example.org", "@example.net")).all()
    born = pd.to_datetime(df["date_of_birth"])
    age_on_census = (pd.Timestamp("1994-07-01") - born).dt.days // 365.25
    assert ((age_on_census - df["age"]).abs() <= 1).all()
    assert df["mrn"].is_unique
    first_or_last = [
        name.split()[0] in note or name.split()[1] in note
        for name, note in zip(df["patient_name"], df["notes"], strict=True)
    ]
    assert all(first_or_last)


def test_scanner_finds_every_identity_column():
    report = scan_table(load_raw_demo_table(2000))
    expected = {"patient_name": "PERSON", "ssn": "US_SSN", "email": "EMAIL", "phone": "PHONE",
                "street_address": "STREET_ADDRESS", "zip": "US_ZIP", "date_of_birth": "DATE_OF_BIRTH",
                "mrn": "MEDICAL_RECORD_NUMBER"}
    for col, ent in expected.items():
        assert report.finding(col).entity == ent
    assert report.finding("notes").kind == "text" and report.finding("notes").is_pii
    assert {f.column for f in report.pii_columns()} == set(IDENTITY_COLUMNS)


def test_default_protection_leaves_no_raw_name_in_the_demo_notes(tmp_path):
    """The demo's notes name patients outside the bundled dictionaries; row linkage closes that leak and the
    residual check agrees (the demo's "holds no raw identifiers" line)."""
    import os

    from bastion.crypto.keys import Keyring, LocalMasterKey
    from bastion.data.protect import protect

    raw = load_raw_demo_table(rows=3000)
    keyring = Keyring(tmp_path / "k.json", LocalMasterKey(os.urandom(32), source="test"))
    out, rep = protect(raw, None, keyring=keyring)
    left = [n for n, note in zip(raw["patient_name"], out["notes"], strict=True) if n in note]
    lasts = [n.split()[1] for n, note in zip(raw["patient_name"], out["notes"], strict=True) if n.split()[1] in note]
    assert left == [] and lasts == []
    assert rep.residual_identifiers == 0 and rep.linked["notes"] > 0
