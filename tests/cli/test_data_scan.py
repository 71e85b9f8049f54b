"""`bastion data scan`: table and JSON output, -o file, exit codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from bastion.cli.main import app

runner = CliRunner()


@pytest.fixture
def table(tmp_path):
    df = pd.DataFrame({
        "ssn": ["123-45-6789", "234-56-7890"] * 30,
        "status": ["active", "closed"] * 30,
        "notes": [
            "Patient Maria Garcia called from +44 20 7946 0958 today.",
            "nothing to report in this note today",
        ]
        * 30,
    })
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    return path


def test_json_and_output_file(table, tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["data", "scan", str(table), "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["schema_version"] == 1 and doc == json.loads(out.read_text())
    assert doc["pii_columns"] == ["ssn", "notes"]


def test_human_table(table):
    res = runner.invoke(app, ["data", "scan", str(table)])
    assert res.exit_code == 0
    assert "US_SSN" in res.output and "2 of 3 columns hold PII" in res.output


def test_fail_on_pii_exit_code(table):
    from bastion.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["data", "scan", str(table), "--json", "--fail-on-pii"])
    assert e.value.code == 1


def test_bad_input_exit_code(tmp_path):
    from bastion.cli.main import main

    p = tmp_path / "empty.parquet"
    p.write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        main(["data", "scan", str(p)])
    assert e.value.code == 2
