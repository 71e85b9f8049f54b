"""`bastion doctor`: one line per check; exit 0 healthy, 1 when a check fails, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app


def _doctor(*args: str) -> Any:
    return CliRunner().invoke(app, ["doctor", *args])


def test_healthy_local_project(project: Any) -> None:
    res = _doctor()
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    names = [ln.split()[1] for ln in lines]
    assert names == ["settings", "extras", "database", "artifacts", "consistency", "keys"]
    assert all(ln.split()[0] in {"ok", "warn"} for ln in lines)
    doc = json.loads(_doctor("--json").output)
    assert {c["name"]: c["status"] for c in doc}["database"] == "ok"


def test_no_project_is_one_failed_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = _doctor()
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"fail settings     no Bastion project at {tmp_path}: run `bastion "
                                               "init` there"]


def test_unreachable_database_fails_its_line_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ..conftest import free_port

    port = free_port()
    (tmp_path / "bastion.toml").write_text(f'[bastion]\ndatabase_url = "postgresql://u:hunter2@127.0.0.1:{port}/x"\n')
    monkeypatch.chdir(tmp_path)
    res = _doctor()
    assert res.exit_code == 1
    by = {ln.split()[1]: ln for ln in res.output.strip().splitlines()}
    assert by["database"].startswith("fail")
    assert f"127.0.0.1:{port}" in by["database"]
    assert "hunter2" not in res.output  # never the password
    assert by["artifacts"].startswith("ok")
    assert "Traceback" not in res.output


def test_folder_not_sharing_the_artifact_store_is_caught(tmp_path: Path, pg_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.project import init_project

    monkeypatch.setenv("BASTION_SCAN_ON_REGISTER", "false")
    a = init_project(tmp_path / "a", database_url=pg_url)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    a.log_model(weights, name="m", flavor="file")
    a.close()
    init_project(tmp_path / "b", database_url=pg_url).close()  # same database, its own artifact folder
    monkeypatch.chdir(tmp_path / "b")
    res = _doctor()
    assert res.exit_code == 1
    line = next(ln for ln in res.output.splitlines() if ln.split()[1] == "consistency")
    assert line.startswith("fail") and "m:1" in line and "share the artifact store" in line
    monkeypatch.chdir(tmp_path / "a")
    assert _doctor().exit_code == 0


def test_unreachable_database_is_one_line_exit_2(tmp_path: Path) -> None:
    from ..conftest import free_port

    port = free_port()
    (tmp_path / "bastion.toml").write_text(f'[bastion]\ndatabase_url = "postgresql://u:hunter2@127.0.0.1:{port}/x"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    proc = subprocess.run([sys.executable, "-m", "bastion.cli", "model", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "hunter2" not in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_keys_line_says_whether_shared_data_keys_unwrap_here(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from bastion._doctor import run_doctor
    from bastion.crypto.keys import EnvKeyProvider, project_data_keyring
    from bastion.project import init_project

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = init_project(tmp_path / "a", database_url=url)
    init_project(tmp_path / "b", database_url=url).close()
    good = {"BASTION_MASTER_KEY": base64.b64encode(b"G" * 32).decode()}
    project_data_keyring(a, EnvKeyProvider(environ=good)).get_or_create("encrypt", "d")
    a.close()
    monkeypatch.setenv("BASTION_MASTER_KEY", good["BASTION_MASTER_KEY"])
    [keys] = [c for c in run_doctor(tmp_path / "b") if c.name == "keys"]
    assert keys.status == "ok" and "1 shared data key(s), all wrapped for this machine's master key" in keys.detail
    monkeypatch.setenv("BASTION_MASTER_KEY", base64.b64encode(b"X" * 32).decode())
    [keys] = [c for c in run_doctor(tmp_path / "b") if c.name == "keys"]
    assert keys.status == "warn" and "1 of 1 shared data key(s) are not wrapped" in keys.detail
