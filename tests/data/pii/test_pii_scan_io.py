"""scan_table over files and folders, and bad input: empty, truncated, mixed types, huge cells."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from bastion.data import scan_data
from bastion.data.pii import scan_table
from bastion.errors import ConfigError, DataError


@pytest.fixture
def small(corpus_mod):
    return corpus_mod.make_table(120, seed=3, neutral=False)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_file_formats_give_the_same_verdicts(tmp_path, small, fmt):
    df = small.frame
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    report = scan_table(path)
    verdicts = {f.column: f.entity for f in report.columns if f.kind == "column"}
    assert verdicts["ssn"] == "US_SSN" and verdicts["email"] == "EMAIL" and verdicts["zip_code"] == "US_ZIP"
    assert report.finding("notes").kind == "text"
    assert report.rows_scanned == len(df)


def test_folder_of_files_and_progress(tmp_path, small):
    small.frame.iloc[:60].to_parquet(tmp_path / "a.parquet", index=False)
    small.frame.iloc[60:].to_parquet(tmp_path / "b.parquet", index=False)
    calls = []
    report = scan_table(tmp_path, progress=lambda done, total: calls.append(done))
    assert report.rows_scanned == 120 and calls[-1] == 120
    assert report.finding("iban").entity == "IBAN"


def test_scan_data_is_scan_table(small):
    assert scan_data(small.frame).to_dict() == scan_table(small.frame).to_dict()


def test_empty_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        scan_table(p)


def test_header_only_csv(tmp_path):
    p = tmp_path / "header.csv"
    p.write_text("a,b\n")
    with pytest.raises(DataError, match="no rows"):
        scan_table(p)


def test_truncated_parquet_is_a_data_error_and_untouched(tmp_path, small):
    p = tmp_path / "t.parquet"
    small.frame.to_parquet(p, index=False)
    data = p.read_bytes()[:-200]
    p.write_bytes(data)
    before = hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=r"truncated|Cannot read"):
        scan_table(p)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [("x.txt", b"a,b\n1,2\n", "unknown extension"), ("bad.jsonl", b"{not json\n", "JSON Lines")],
)
def test_bad_files(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=match):
        scan_table(p)


def test_missing_path_and_wrong_type(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_table(tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="DataFrame or a path"):
        scan_table(42)


def test_mixed_type_column():
    df = pd.DataFrame({"mixed": ["123-45-6789", 42, None, 3.5, b"bytes", "234-56-7890"] * 20})
    finding = scan_table(df).finding("mixed")
    assert finding.kind in ("column", "none")
    assert all("6789" not in e or e.startswith("***") for e in finding.masked_examples)


def test_huge_cell_is_scanned():
    big = "filler text " * 50_000 + " contact jane.doe@example.com " + "more words " * 1000
    df = pd.DataFrame({"notes": [big, "short note about nothing in particular here"]})
    finding = scan_table(df).finding("notes")
    assert finding.kind == "text" and finding.spans_found.get("EMAIL") == 1


def test_unknown_column_and_entity(small):
    with pytest.raises(DataError, match="not in"):
        scan_table(small.frame, columns=["nope"])
    with pytest.raises(ConfigError, match="Unknown entity"):
        scan_table(small.frame, entities=["NOPE"])


def test_columns_and_entities_restrict(small):
    report = scan_table(small.frame, columns=["ssn", "email"], entities=["US_SSN"])
    assert [f.column for f in report.columns] == ["ssn", "email"]
    assert report.finding("ssn").entity == "US_SSN" and report.finding("email").kind == "none"


def test_zip_leading_zeros_survive_csv(tmp_path):
    p = tmp_path / "z.csv"
    pd.DataFrame({"col_1": [f"{i:05d}" for i in range(1000, 99000, 163)]}).to_csv(p, index=False)
    assert scan_table(p).finding("col_1").entity == "US_ZIP"


def test_decision_is_explained(small):
    f = scan_table(small.frame).finding("card_number")
    assert f.entity == "CREDIT_CARD" and any("match CREDIT_CARD" in e for e in f.evidence)
    assert 0.0 < f.confidence <= 1.0 and f.share > 0.9
    none = scan_table(small.frame).finding("order_date")
    assert none.kind == "none" and none.entity is None and none.evidence
