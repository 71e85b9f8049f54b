"""`bastion model scan`: formats, output file, fail-on threshold, exit codes, registry references."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."


def _files(root: Path) -> tuple[Path, Path, Path]:
    evil = root / "evil.pkl"
    evil.write_bytes(EVIL)
    ok = root / "ok.pkl"
    ok.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    medium = root / "medium.pkl"
    medium.write_bytes(b"\x80\x02cmymod\nThing\n.")
    return evil, ok, medium


def test_exit_codes_and_text(cli: Callable[..., Any], project_dir: Path) -> None:
    evil, ok, medium = _files(project_dir)
    res = cli("model", "scan", str(ok))
    assert res.exit_code == 0, res.stderr
    assert "no findings" in res.stdout
    res = cli("model", "scan", str(evil))
    assert res.exit_code == 1
    assert "pickle.dangerous-global" in res.stdout
    assert cli("model", "scan", str(medium)).exit_code == 0
    assert cli("model", "scan", str(medium), "--fail-on", "medium").exit_code == 1
    assert cli("model", "scan", str(evil), "--fail-on", "critical").exit_code == 1
    res = cli("model", "scan", str(project_dir / "missing.pkl"))
    assert res.exit_code == 2
    assert "neither an existing file" in res.stderr
    assert cli("model", "scan", str(ok), "--fail-on", "severe").exit_code == 2
    assert cli("model", "scan", str(ok), "--format", "xml").exit_code == 2


def test_json_and_sarif_outputs(cli: Callable[..., Any], project_dir: Path) -> None:
    evil, _ok, _medium = _files(project_dir)
    res = cli("model", "scan", str(evil), "--json")
    doc = json.loads(res.stdout)
    assert doc["schema_version"] == 1
    assert doc["findings"][0]["rule_id"] == "pickle.dangerous-global"
    out = project_dir / "scan.sarif"
    res = cli("model", "scan", str(project_dir), "--format", "sarif", "-o", str(out))
    assert res.exit_code == 1
    sarif = json.loads(out.read_text())
    assert sarif["version"] == "2.1.0"
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"pickle.dangerous-global"}


def test_scan_registered_version(cli: Callable[..., Any], project: Any, project_dir: Path) -> None:
    _evil, ok, _medium = _files(project_dir)
    project.log_model(ok, name="churn")
    res = cli("model", "scan", "churn:1", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["summary"]["findings"] == 0
    assert cli("model", "scan", "nosuch:9").exit_code == 2
