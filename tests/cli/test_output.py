"""What every CLI user sees: `--version`, help that explains concepts, lines never cut or wrapped at 80
columns outside a terminal, one-line errors (busy port, no passphrase without a terminal)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import bastion

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _bastion(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a child process: stdout and stderr are pipes, not terminals."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_") and k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "bastion.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**base, "PYTHONPATH": SRC, **(env or {})}, stdin=subprocess.DEVNULL, timeout=180)


def test_version(cli) -> None:
    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.strip().startswith(f"bastion {bastion.__version__} (Python 3.")
    full = cli("--debug", "--version")  # through the whole app too
    assert full.exit_code == 0 and full.stdout == r.stdout


def test_help_explains_concepts_without_placeholders(cli) -> None:
    r = cli("--help")
    assert r.exit_code == 0
    for concept in ("reference", "NAME@ALIAS", "gate", "skops", "ONNX", "safetensors", "Exit codes"):
        assert concept in r.stdout, concept
    sub = cli("gate", "run", "--help")
    assert "<bool>" not in r.stdout + sub.stdout and "--no-sign" in sub.stdout
    assert not any(ch in sub.stdout for ch in "╭│╰")  # plain help: nothing boxed to a fixed width


@pytest.fixture(scope="module")
def long_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project in a long folder, holding a dataset with a long name, column and description."""
    root = tmp_path_factory.mktemp("out") / ("a-rather-long-folder-name-" * 3)
    root.mkdir()
    assert _bastion("init", cwd=root).returncode == 0
    table = root / "t.csv"
    table.write_text("id,comment_with_a_long_column_name\n" + "".join(f"{i},{'x' * 150}\n" for i in range(5)))
    reg = _bastion("data", "register", str(table), "--name", "long-names", "--description", "d" * 120, cwd=root)
    assert reg.returncode == 0, reg.stderr
    return root


@pytest.mark.parametrize("columns", [None, "80"], ids=["COLUMNS-unset", "COLUMNS=80"])
def test_nothing_is_cut_or_wrapped_at_80_columns_in_a_pipe(long_project: Path, columns: str | None) -> None:
    root = long_project
    env = {"COLUMNS": columns} if columns else None
    out = _bastion("data", "list", cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout and "long-names:1" in out.stdout
    # audit details: every value whole, each entry on one line (the register entry names the 64-hex digest)
    digest = json.loads(_bastion("data", "show", "long-names:1", "--json", cwd=root).stdout)["digest"]
    log = _bastion("audit", "log", cwd=root, env=env)
    assert log.returncode == 0, log.stderr
    assert "…" not in log.stdout
    lines = [line for line in log.stdout.splitlines() if "dataset.register" in line]
    assert len(lines) == 1 and digest in lines[0] and len(lines[0]) > 80, log.stdout
    # an error naming a long path: one line, whole
    missing = root / ("missing-" * 12 + ".parquet")
    err = _bastion("monitor", "report", "--reference", str(missing), "--current", str(missing), cwd=root, env=env)
    assert err.returncode == 2
    lines = err.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and len(lines[0]) > 80


def test_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _bastion("serve", "m@production", "--port", str(port), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"error: Port {port} on 127.0.0.1 is already in use; stop the process using it " \
                               "or choose another --port."
    assert r.stdout == ""


@pytest.mark.parametrize("args", [["keys", "init"], ["keys", "signing", "init", "release"]])
def test_no_passphrase_and_no_terminal_says_what_to_do(tmp_path: Path, args: list[str]) -> None:
    assert _bastion("init", cwd=tmp_path).returncode == 0
    r = _bastion(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert "aborted" not in r.stderr and re.search(r"BASTION_KEY_PASSPHRASE is not set and there is no terminal",
                                                   r.stderr)
    assert not (tmp_path / ".bastion" / "keys" / "master.key").exists()
