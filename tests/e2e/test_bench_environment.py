"""bench/_freeze.py records versions, load, commit and pip freeze beside a benchmark's results (issue 18)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _freeze_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_freeze_under_test", ROOT / "bench" / "_freeze.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


freeze = _freeze_module()

_LOAD = r"\d+\.\d\d / \d+\.\d\d / \d+\.\d\d"


def test_record_environment_writes_freeze_versions_load_and_commit(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = freeze.record_environment(out, {"bastion": sys.executable})
    frozen = (out / "freeze-bastion.txt").read_text(encoding="utf-8")
    version = sys.version.split()[0]
    assert frozen.startswith(f"# python {version} ({sys.executable}), recorded ")
    assert re.search(r"^pytest==\S+$", frozen, re.M), "pip freeze lists the venv's packages"
    text = (out / "environment.txt").read_text(encoding="utf-8")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert re.search(rf"^commit: {head}(\+dirty)?$", text, re.M)
    assert f"venv bastion: Python {version} ({sys.executable}), packages in freeze-bastion.txt" in text
    assert re.search(rf"^load average at start \(1/5/15 min\): {_LOAD}$", text, re.M)
    assert "at end" not in text
    env.finish()
    text = (out / "environment.txt").read_text(encoding="utf-8")
    assert re.search(rf"^load average at end \(1/5/15 min\): {_LOAD}$", text, re.M)
    summary = env.markdown()
    assert f"bastion: Python {version}" in summary and "`freeze-bastion.txt`" in summary
    assert re.search(rf"load average {_LOAD} at start, {_LOAD} at end", summary)
    assert env.versions("bastion", "PyYAML", "pytest", "no-such-package-xyz") == (
        f"PyYAML {yaml.__version__}, pytest {pytest.__version__}, no-such-package-xyz not installed")
    with pytest.raises(ValueError, match="no venv 'mlflow' was recorded"):
        env.versions("mlflow", "mlflow")


@pytest.mark.parametrize("name", ["", "../up", "a/b", "-x", "ok\n", "sp ace"])
def test_a_venv_name_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="venv name"):
        freeze.record_environment(tmp_path, {name: sys.executable})
    assert list(tmp_path.iterdir()) == []


def test_no_venv_is_refused_and_a_missing_interpreter_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one venv"):
        freeze.record_environment(tmp_path, {})
    with pytest.raises(OSError):
        freeze.record_environment(tmp_path, {"ghost": str(tmp_path / "no-such-python")})
    assert not (tmp_path / "environment.txt").exists()


def test_shell_form_usage_error_exits_2() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "_freeze.py")], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage:" in proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "_freeze.py"), "out", "no-equals-sign"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
