from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.data.protect import Policy, k_anonymity, protect, protect_file
from bastion.data.reveal import reveal_file, reveal_table
from bastion.errors import ConfigError, DataError, KeyManagementError, PolicyViolation

from .conftest import PEOPLE_SCAN, fake_detector, fake_scan


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_defaults_from_scan(people, keyring):
    out, rep = protect(
        people, None, keyring=keyring, scan=fake_scan(PEOPLE_SCAN, ("notes",)), detector=fake_detector
    )
    ops = {c.column: c.operator for c in rep.columns}
    assert ops == {
        "name": "tokenize",
        "ssn": "encrypt",
        "dob": "generalize",
        "zip": "generalize",
        "age": "keep",
        "notes": "spans",
    }
    assert out["name"][0] == out["name"][2] != out["name"][1]
    assert out["dob"].tolist() == ["1984", "1990", "1984", "2001"]
    assert out["zip"].tolist() == ["021", "941", "021", "100"]
    assert out["notes"][0] == "Call <PERSON> at home" and out["notes"][3] == "<PERSON> visited"
    assert rep.column("notes").spans == {"PERSON": 2}
    assert rep.k_anonymity.quasi_identifiers == ("dob", "zip", "age")


def test_round_trip_in_memory(people, keyring):
    pol = {"columns": {"name": "tokenize", "ssn": "encrypt", "age": "encrypt"}}
    out, _ = protect(people, pol, keyring=keyring, scan=fake_scan(PEOPLE_SCAN))
    table = pa.Table.from_pandas(out, preserve_index=False).replace_schema_metadata(
        out.attrs["bastion.protection"]
    )
    back = reveal_table(table, ["name", "ssn", "age"], keyring).to_pandas()
    pd.testing.assert_frame_equal(back[["name", "ssn", "age"]], people[["name", "ssn", "age"]])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=40)), min_size=1, max_size=30))
def test_round_trip_property(values, keyring):
    table = pa.table({"a": pa.array(values, pa.string()), "b": pa.array(values, pa.string())})
    out, _ = protect(
        table,
        {"columns": {"a": "tokenize", "b": "encrypt"}},
        keyring=keyring,
        scan=fake_scan({"a": None, "b": None}),
    )
    back = reveal_table(out, ["a", "b"], keyring)
    assert back.column("a").to_pylist() == values == back.column("b").to_pylist()


def test_k_anonymity_hand_computed(keyring):
    df = pd.DataFrame(
        {"zip": ["021", "021", "021", "941", "941", "100"], "sex": list("FFMMMF"), "x": range(6)}
    )
    _, rep = protect(
        df,
        {"quasi_identifiers": ["zip", "sex"]},
        keyring=keyring,
        scan=fake_scan({"zip": None, "sex": None, "x": None}),
    )
    k = rep.k_anonymity
    # classes: (021,F)=2 (021,M)=1 (941,M)=2 (100,F)=1; measured only (no min_k)
    assert (k.k, k.classes, k.rows, k.rows_below_min_k, k.satisfied) == (1, 4, 6, 0, None)
    assert k_anonymity({("a",): 3, ("b",): 5}, ("q",), min_k=3).satisfied is True


KANON_DF = pd.DataFrame({"zip": ["021", "021", "021", "941", "941", "100"], "sex": list("FFMMMF"), "x": range(6)})


def test_k_anonymity_enforced_fails_and_lists_classes(keyring):
    # sex has no hierarchy and ZIP prefixes never merge these classes: no way to k=2 without suppression
    with pytest.raises(PolicyViolation) as e:
        protect(
            KANON_DF,
            {"quasi_identifiers": ["zip", "sex"], "k_anonymity": {"min_k": 2, "max_suppression": 0}},
            keyring=keyring,
            scan=fake_scan({"zip": None, "sex": None, "x": None}),
        )
    msg = str(e.value)
    assert e.value.exit_code == 1
    # listed at the coarsest level tried (ZIP1)
    assert "zip=0, sex=M (1 rows)" in msg and "zip=1, sex=F (1 rows)" in msg and "Nothing was written" in msg


def test_k_anonymity_enforced_by_suppression_says_how_many(keyring):
    out, rep = protect(
        KANON_DF,
        {"quasi_identifiers": ["zip", "sex"], "k_anonymity": {"min_k": 2, "max_suppression": 0.4}},
        keyring=keyring,
        scan=fake_scan({"zip": None, "sex": None, "x": None}),
    )
    k = rep.k_anonymity
    assert (k.k, k.rows, k.suppressed_rows, k.satisfied) == (2, 4, 2, True)
    assert sorted(out["x"].tolist()) == [0, 1, 3, 4]


def test_k_anonymity_enforced_by_generalising_along_hierarchies(keyring):
    rng = np.random.default_rng(3)
    n = 2000
    age = rng.integers(18, 90, n)
    prefix = np.array(["021", "100", "606", "941"])[rng.integers(0, 4, n)]
    df = pd.DataFrame(
        {
            "age": age,
            "zip": [f"{p}{z:02d}" for p, z in zip(prefix, rng.integers(0, 99, n), strict=True)],
            "dob": [f"{2000 - a}-{m:02d}-{d:02d}" for a, m, d in zip(age, rng.integers(1, 13, n),
                                                                   rng.integers(1, 29, n), strict=True)],
            "x": range(n),
        }
    )
    scan = fake_scan({"age": None, "zip": "US_ZIP", "dob": "DATE_OF_BIRTH", "x": None})
    _, before = protect(df, {"quasi_identifiers": ["age", "zip", "dob"]}, keyring=keyring, scan=scan)
    assert before.k_anonymity.k < 5
    out, rep = protect(
        df, {"quasi_identifiers": ["age", "zip", "dob"], "k_anonymity": {"min_k": 5}}, keyring=keyring, scan=scan
    )
    k = rep.k_anonymity
    assert k.k >= 5 and k.satisfied and k.suppressed_rows <= 0.02 * n and k.rows == n - k.suppressed_rows
    # every quasi-identifier moved up its hierarchy from the default operator's level
    assert set(k.levels) == {"age", "zip", "dob"} and k.levels != {"age": "raw", "zip": "zip3", "dob": "year"}
    sizes = out.groupby(["age", "zip", "dob"]).size()
    assert sizes.min() >= 5


def test_file_protect_streams_and_never_touches_input(tmp_path, people, keyring):
    src = tmp_path / "raw.parquet"
    pq.write_table(pa.Table.from_pandas(pd.concat([people] * 50, ignore_index=True)), src, row_group_size=37)
    before = _sha(src)
    rep = protect_file(
        src,
        tmp_path / "clean" / "p.parquet",
        policy={"batch_rows": 64},
        keyring=keyring,
        scan=fake_scan(PEOPLE_SCAN, ("notes",)),
        detector=fake_detector,
    )
    assert _sha(src) == before
    assert rep.rows == 200 and rep.source_digest == f"sha256:{before}"
    assert pq.ParquetFile(tmp_path / "clean" / "p.parquet").metadata.num_row_groups == 4
    saved = json.loads((tmp_path / "clean" / "p.protection.json").read_text())
    assert saved["schema_version"] == 1 and saved["operators"]["ssn"] == "encrypt"
    res = reveal_file(
        tmp_path / "clean" / "p.parquet", ["ssn", "name"], keyring=keyring, output=tmp_path / "rev.parquet"
    )
    back = pq.read_table(tmp_path / "rev.parquet").to_pandas()
    assert res.rows == 200 and back["ssn"].tolist() == pd.concat([people] * 50)["ssn"].tolist()


def test_canary_pii_never_in_logs_or_report(tmp_path, people, keyring, caplog):
    caplog.set_level(logging.DEBUG, logger="bastion")
    src = tmp_path / "raw.parquet"
    people.to_parquet(src)
    rep = protect_file(
        src,
        tmp_path / "out.parquet",
        keyring=keyring,
        scan=fake_scan(PEOPLE_SCAN, ("notes",)),
        detector=fake_detector,
    )
    text = json.dumps(rep.to_dict()) + (tmp_path / "out.protection.json").read_text() + caplog.text
    data = pq.read_table(tmp_path / "out.parquet").to_pandas().to_csv()
    for secret in ["Ann Lee", "Bob Ray", "123-45-6789", "234-56-7890", "1984-03-02", "02139"]:
        assert secret not in text
        assert secret not in data
    assert keyring.get(rep.key_ids["encrypt"]).material.hex() not in text


@pytest.mark.parametrize("content", [b"", b"PAR1 not really parquet", None])
def test_bad_inputs_are_clear_errors(tmp_path, keyring, content):
    src = tmp_path / "raw.parquet"
    if content is None:  # truncated real file
        pq.write_table(pa.table({"a": ["x"] * 100}), src)
        src.write_bytes(src.read_bytes()[:-20])
    else:
        src.write_bytes(content)
    before = src.read_bytes()
    with pytest.raises(DataError, match=r"empty|not a readable Parquet|truncated"):
        protect_file(src, tmp_path / "out.parquet", keyring=keyring, scan=fake_scan({"a": None}))
    assert src.read_bytes() == before
    assert not (tmp_path / "out.parquet").exists()


def test_mixed_types_and_huge_cells(keyring):
    with pytest.raises(DataError, match="mixed types"):
        protect(
            pd.DataFrame({"a": [1, "x", 2.5]}),
            {"columns": {"a": "tokenize"}},
            keyring=keyring,
            scan=fake_scan({"a": None}),
        )
    df = pd.DataFrame({"a": ["ok", "y" * 5000]})
    with pytest.raises(DataError, match="row 1 holds a 5,000-byte cell"):
        protect(
            df,
            {"columns": {"a": "encrypt"}, "max_cell_bytes": 1000},
            keyring=keyring,
            scan=fake_scan({"a": None}),
        )


def test_wrong_key_on_reveal(tmp_path, people, keyring):
    import os

    from bastion.crypto.keys import Keyring, LocalMasterKey

    src = tmp_path / "raw.parquet"
    people.to_parquet(src)
    protect_file(src, tmp_path / "o.parquet", keyring=keyring, scan=fake_scan(PEOPLE_SCAN))
    wrong = Keyring(keyring.path, LocalMasterKey(os.urandom(32), source="wrong"))
    with pytest.raises(KeyManagementError, match="wrapped by master key"):
        reveal_file(tmp_path / "o.parquet", ["ssn"], keyring=wrong)
    with pytest.raises(DataError, match="cannot be reversed"):
        reveal_file(tmp_path / "o.parquet", ["dob"], keyring=keyring)


def test_policy_errors(people, keyring):
    with pytest.raises(ConfigError, match="does not have"):
        protect(people, {"columns": {"nope": "drop"}}, keyring=keyring, scan=fake_scan(PEOPLE_SCAN))
    with pytest.raises(ConfigError, match="dropped"):
        protect(
            people,
            {"columns": {"zip": "drop"}, "quasi_identifiers": ["zip"]},
            keyring=keyring,
            scan=fake_scan(PEOPLE_SCAN),
        )
    out, _ = protect(
        people,
        Policy.from_dict({"columns": {"ssn": "drop", "name": {"operator": "mask", "keep": 2}}}),
        keyring=keyring,
        scan=fake_scan(PEOPLE_SCAN),
    )
    assert "ssn" not in out.columns and out["name"][0] == "*****ee"


def test_real_detection_end_to_end(tmp_path, keyring):
    """With the real scan and span detection (no fakes)."""
    n = 60
    first = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer"]
    last = ["Smith", "Johnson", "Williams", "Brown", "Jones"]
    names = [f"{first[i % 6]} {last[i % 5]}" for i in range(n)]
    df = pd.DataFrame(
        {
            "patient_name": names,
            "email": [f"person{i}@example.org" for i in range(n)],
            "ssn": [f"{123 + i:03d}-45-{6789 - i:04d}" for i in range(n)],
            "notes": [
                f"Spoke with {nm} about the visit; email person{i}@example.org." for i, nm in enumerate(names)
            ],
            "glucose": [90.0 + i for i in range(n)],
        }
    )
    src = tmp_path / "raw.parquet"
    df.to_parquet(src)
    rep = protect_file(src, tmp_path / "clean.parquet", keyring=keyring)
    ops = rep.to_dict()["operators"]
    assert ops["patient_name"] == "tokenize" and ops["email"] == "tokenize" and ops["ssn"] == "encrypt"
    assert ops["glucose"] == "keep"
    out = pq.read_table(tmp_path / "clean.parquet").to_pandas()
    blob = out.to_csv() + json.dumps(rep.to_dict())
    assert "person7@example.org" not in blob and "Mary Johnson" not in blob and "124-45-6788" not in blob
    back = reveal_file(tmp_path / "clean.parquet", ["ssn", "patient_name"], keyring=keyring, limit=n).table
    assert back.column("ssn").to_pylist() == df["ssn"].tolist()
