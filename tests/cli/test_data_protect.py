from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from bastion.cli.main import app, main
from bastion.errors import KeyManagementError

runner = CliRunner()


@pytest.fixture
def raw(project, monkeypatch, project_dir):
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "pw")
    assert runner.invoke(app, ["keys", "init"]).exit_code == 0
    n = 40
    df = pd.DataFrame(
        {
            "patient_name": [
                f"{['James', 'Mary', 'Robert', 'Linda'][i % 4]} {['Smith', 'Brown', 'Jones'][i % 3]}"
                for i in range(n)
            ],
            "ssn": [f"{200 + i:03d}-45-{1000 + i:04d}" for i in range(n)],
            "score": [float(i) for i in range(n)],
        }
    )
    path = project_dir / "raw.parquet"
    df.to_parquet(path)
    return path, df


def test_protect_reveal_validate(project, raw, project_dir):
    path, df = raw
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    r = runner.invoke(
        app, ["data", "protect", str(path), "-o", "clean/p.parquet", "--name", "patients", "--json"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["dataset"] == "patients:1" and doc["operators"]["ssn"] == "encrypt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert (project_dir / "clean" / "p.protection.json").is_file()
    dv = project.get_dataset("patients:1")
    assert dv.extra["source_digest"] == f"sha256:{before}"
    assert project.attachments("patients:1", "protection", subject_kind="dataset")
    assert "200-45-1000" not in r.stdout

    r = runner.invoke(
        app, ["data", "reveal", "clean/p.parquet", "--columns", "ssn", "--role", "auditor", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert [row["ssn"] for row in json.loads(r.stdout)["rows_shown"]] == df["ssn"].tolist()[:20]
    reveals = [e for e in project.audit.entries() if e.action == "data.reveal"]
    assert reveals[0].details["role"] == "auditor" and reveals[0].details["columns"] == ["ssn"]
    assert "200-45-1000" not in json.dumps([e.to_dict() for e in project.audit.entries()])

    r = runner.invoke(app, ["data", "validate", "clean/p.parquet", "--against", "patients:1"])
    assert r.exit_code == 0, r.output
    df.assign(score=df["score"] + 1000).to_parquet(project_dir / "live.parquet")
    r = runner.invoke(app, ["data", "validate", "live.parquet", "--against", "patients:1", "--json"])
    assert r.exit_code == 1
    assert "out_of_range" in {v["check"] for v in json.loads(r.stdout)["violations"]}


def test_reveal_wrong_passphrase_exits_2(project, raw, monkeypatch, capsys):
    path, _ = raw
    assert (
        runner.invoke(app, ["data", "protect", str(path), "-o", "c.parquet", "--no-register"]).exit_code == 0
    )
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "wrong")
    r = runner.invoke(app, ["data", "reveal", "c.parquet", "--columns", "ssn", "--role", "auditor"])
    assert isinstance(r.exception, KeyManagementError)
    with pytest.raises(SystemExit) as e:
        main(["data", "reveal", "c.parquet", "--columns", "ssn", "--role", "auditor"])
    assert e.value.code == 2
    assert "Wrong passphrase" in capsys.readouterr().err
