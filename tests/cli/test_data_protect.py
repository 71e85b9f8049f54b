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


def _exit_code(args):
    try:
        main(args)
    except SystemExit as e:
        return e.code
    return 0


_REVEAL_POLICY = """\
version: 1
reveal:
  auditor:
    actors: [alice]
    columns: [ssn]
  steward:
    actors: ["*"]
    columns: ["*"]
"""


@pytest.mark.parametrize(
    ("actor", "role", "columns", "allowed", "reason"),
    [
        ("alice", "auditor", "ssn", True, None),
        ("bob", "auditor", "ssn", False, "'bob' may not act as 'auditor'"),
        ("alice", "auditor", "ssn,patient_name", False, "may not reveal patient_name"),
        ("alice", "admin", "ssn", False, "role 'admin' is not in the policy's reveal section"),
        ("mallory", "steward", "ssn,patient_name", True, None),
    ],
)
def test_reveal_follows_the_policy_reveal_section(
    project, raw, project_dir, monkeypatch, capsys, actor, role, columns, allowed, reason
):
    """Roles, their actors and their columns come from bastion-policy.yaml; a refusal exits 1 before any
    passphrase is asked for, reveals nothing and is audited as denied."""
    path, df = raw
    assert runner.invoke(app, ["data", "protect", str(path), "-o", "c.parquet", "--no-register"]).exit_code == 0
    (project_dir / "bastion-policy.yaml").write_text(_REVEAL_POLICY)
    monkeypatch.setenv("BASTION_USER", actor)
    if not allowed:
        monkeypatch.delenv("BASTION_KEY_PASSPHRASE")  # a refusal must come before the key is opened
    out = project_dir / "revealed.parquet"
    code = _exit_code(["data", "reveal", "c.parquet", "--columns", columns, "--role", role, "-o", str(out)])
    err = capsys.readouterr().err
    entries = project.audit.entries()
    [attempt] = [en for en in entries if en.action.startswith("data.reveal")]
    if allowed:
        assert code == 0, err
        assert pd.read_parquet(out)["ssn"].tolist() == df["ssn"].tolist()
        assert attempt.action == "data.reveal" and attempt.actor == actor
        return
    assert code == 1
    assert reason in err and "Reveal refused" in err
    assert not out.exists()
    denied = attempt
    assert denied.action == "data.reveal.denied" and denied.actor == actor
    assert reason in denied.details["reason"] and denied.details["role"] == role
    assert "200-45-1000" not in json.dumps([en.to_dict() for en in entries])


def test_without_a_reveal_section_any_role_reveals_and_a_bad_section_is_a_usage_error(
    project, raw, project_dir, monkeypatch, capsys
):
    path, _ = raw
    assert runner.invoke(app, ["data", "protect", str(path), "-o", "c.parquet", "--no-register"]).exit_code == 0
    (project_dir / "bastion-policy.yaml").write_text("version: 1\n")
    r = runner.invoke(app, ["data", "reveal", "c.parquet", "--columns", "ssn", "--role", "anyone", "--json"])
    assert r.exit_code == 0, r.output
    (project_dir / "bastion-policy.yaml").write_text("version: 1\nreveal:\n  auditor:\n    actors: []\n")
    assert _exit_code(["data", "reveal", "c.parquet", "--columns", "ssn", "--role", "auditor"]) == 2
    assert "reveal" in capsys.readouterr().err


def test_residual_identifiers_stop_registration_unless_accepted_with_a_reason(project, raw, project_dir, capsys):
    """The residual check re-scans the output: a kept SSN column exits 1, removes the output and registers
    nothing (audited); --accept-residual needs --reason and is audited as unsafe."""
    path, _ = raw
    pol = project_dir / "keep-ssn.yaml"
    pol.write_text("protection:\n  entities:\n    US_SSN: keep\n")
    out = project_dir / "clean" / "r.parquet"
    code = _exit_code(["data", "protect", str(path), "-o", str(out), "--policy", str(pol), "--name", "r"])
    err = capsys.readouterr().err
    assert code == 1
    assert "residual identifiers: 40" in err and "ssn: US_SSN x40" in err and "--accept-residual" in err
    assert not out.exists() and project.list_datasets("r") == []
    [refused] = [e for e in project.audit.entries() if e.action == "data.protect.refused"]
    assert refused.details["residual_identifiers"] == 40
    assert "200-45-1000" not in json.dumps(refused.to_dict())

    assert _exit_code(["data", "protect", str(path), "-o", str(out), "--policy", str(pol), "--accept-residual"]) == 2
    assert "needs a reason" in capsys.readouterr().err

    code = _exit_code(["data", "protect", str(path), "-o", str(out), "--policy", str(pol), "--name", "r",
                       "--accept-residual", "--reason", "SSNs are the join key in the enclave"])
    text = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "residual identifiers: 40 (accepted: SSNs are the join key in the enclave)" in text
    [entry] = [e for e in project.audit.entries() if e.action == "data.protect"]
    assert entry.details["unsafe_accept_residual"] is True
    assert entry.details["reason"] == "SSNs are the join key in the enclave"


def test_protect_prints_residual_and_k_always(project, raw, capsys):
    path, _ = raw
    assert _exit_code(["data", "protect", str(path), "-o", "c.parquet", "--no-register"]) == 0
    text = capsys.readouterr().out
    assert "residual identifiers: 0" in text and "k-anonymity" in text


def test_k_anonymity_below_min_k_exits_1_listing_classes(project, project_dir, capsys):
    df = pd.DataFrame({"age": [30, 31, 32, 33, 71], "sex": ["F", "F", "F", "F", "M"], "x": range(5)})
    df.to_parquet(project_dir / "small.parquet")
    pol = project_dir / "k.yaml"
    pol.write_text("protection:\n  quasi_identifiers: [age, sex]\n  k_anonymity: {min_k: 2, max_suppression: 0}\n")
    code = _exit_code(["data", "protect", "small.parquet", "-o", "s.parquet", "--policy", str(pol)])
    err = capsys.readouterr().err
    assert code == 1 and "Classes below 2" in err and "sex=M" in err
    assert not (project_dir / "s.parquet").exists()
    pol.write_text("protection:\n  quasi_identifiers: [age, sex]\n  k_anonymity: {min_k: 2, max_suppression: 0.4}\n")
    code = _exit_code(["data", "protect", "small.parquet", "-o", "s.parquet", "--policy", str(pol)])
    text = capsys.readouterr().out
    assert code == 0 and "min_k 2" in text and "1 rows suppressed" in text and "k = 4" in text
