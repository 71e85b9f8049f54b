from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

CLI = Callable[..., object]


@pytest.fixture
def files(project_dir: Path) -> dict[str, Path]:
    df = pd.DataFrame({"x": range(40), "y": [0, 1] * 20})
    data = project_dir / "train.parquet"
    df.to_parquet(data)
    model = project_dir / "model.skops"
    sio.dump(LogisticRegression().fit(df[["x"]], df["y"]), model)
    return {"data": data, "model": model}


def test_full_registry_flow(cli, files) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    r = cli("data", "register", str(files["data"]), "--name", "patients", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["ref"] == "patients:1"
    for c in ("1.0", "0.5"):
        r = cli(
            "model",
            "register",
            str(files["model"]),
            "--name",
            "readmission",
            "--dataset",
            "patients:1",
            "--metric",
            "auc=0.91",
            "--param",
            f"C={c}",
        )
        assert r.exit_code == 0, r.stderr
    r = cli("model", "list", "--json")
    assert [m["ref"] for m in json.loads(r.stdout)] == ["readmission:1", "readmission:2"]
    r = cli("model", "show", "readmission:2", "--json")
    shown = json.loads(r.stdout)
    assert shown["datasets"] == ["patients:1"] and shown["params"] == {"C": 0.5}
    r = cli("model", "diff", "readmission:1", "readmission:2", "--json")
    assert json.loads(r.stdout)["params"]["C"] == {"a": 1.0, "b": 0.5}
    assert cli("model", "promote", "readmission:1", "--alias", "production").exit_code == 0
    assert cli("model", "promote", "readmission:2", "--alias", "production").exit_code == 0
    r = cli("model", "rollback", "readmission", "--alias", "production", "--json")
    assert json.loads(r.stdout)["ref"] == "readmission:1"
    r = cli("model", "lineage", "readmission:2", "--json")
    assert json.loads(r.stdout)["children"][0]["ref"] == "patients:1"
    r = cli("audit", "log", "--json", "--action", "model.promote")
    assert len(json.loads(r.stdout)) == 2
    r = cli("audit", "verify")
    assert r.exit_code == 0 and "intact" in r.stdout
    for args in (
        ("model", "list"),
        ("model", "show", "readmission@production"),
        ("data", "list"),
        ("data", "show", "patients:1"),
        ("audit", "log"),
        ("model", "lineage", "readmission:2"),
    ):
        r = cli(*args)
        assert r.exit_code == 0, (args, r.stderr)


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (("model", "show", "nope:1"), 2, "No model named 'nope'"),
        (("model", "show", "bad name"), 2, "Invalid"),
        (("model", "register", "missing.skops", "--name", "m"), 2, "does not exist"),
        (("model", "rollback", "m", "--alias", "production"), 2, "No model named"),
        (("model", "register", "x", "--name", "m", "--metric", "auc"), 2, "KEY=VALUE"),
        (("data", "register", "missing.parquet", "--name", "d"), 2, "does not exist"),
        (("model", "promote", "m:1", "--alias", "p", "--force"), 2, "--reason"),
        (("model", "frobnicate"), 2, "No such command"),
    ],
)
def test_errors_are_messages_with_exit_codes(cli, args, code, needle) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    r = cli(*args)
    assert r.exit_code == code
    assert needle in r.stderr + r.stdout
    assert "Traceback" not in r.stderr + r.stdout


def test_no_project_is_a_usage_error(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("model", "list")
    assert r.exit_code == 2 and "bastion init" in r.stderr


def test_tampered_audit_log_exits_1(cli, project_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    cli("init")
    con = sqlite3.connect(project_dir / ".bastion" / "bastion.db")
    con.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    con.commit()
    con.close()
    r = cli("audit", "verify")
    assert r.exit_code == 1 and "entry 1" in r.stdout
