"""`bastion model scan`: formats, output file, fail-on threshold, exit codes, registry references."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."


def _files(root: Path) -> tuple[Path, Path, Path]:
    evil = root / "evil.pkl"
    evil.write_bytes(EVIL)
    ok = root / "ok.pkl"
    ok.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    medium = root / "medium.pkl"
    # a protocol-5 out-of-band buffer is MEDIUM (an unknown global is HIGH since issue 12: it reaches call sites)
    medium.write_bytes(b"\x80\x05\x97.")
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


def test_a_file_named_like_a_version_never_stands_in_for_it(
    cli: Callable[..., Any], project: Any, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker who can write to the working folder plants `churn:1` (a malicious pickle): the reference is
    refused as ambiguous instead of scanning the planted file, and `./churn:1` still scans the file."""
    _evil, ok, _medium = _files(project_dir)
    project.log_model(ok, name="churn")
    monkeypatch.chdir(project_dir)
    (project_dir / "churn:1").write_bytes(EVIL)
    (project_dir / "churn@production").write_bytes(EVIL)
    for target in ("churn:1", "churn@production"):
        res = cli("model", "scan", target, "--json")
        assert res.exit_code == 2
        assert "both a file here and a model reference" in res.stderr
        assert res.stdout == ""
    assert cli("model", "scan", "./churn:1", "--json").exit_code == 1
    (project_dir / "notes:draft.pkl").write_bytes(pickle.dumps([1, 2]))  # not a reference: scanned as a file
    assert cli("model", "scan", "notes:draft.pkl").exit_code == 0


# -- one command, two ways in: the fast entry path (no Typer) and the Typer app ----------------------


def _blank(text: str | None) -> str | None:
    """``text`` with the run-dependent scan duration blanked (JSON documents and plain text)."""
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return re.sub(r"in \d+\.\d+ s", "in X s", text)
    if isinstance(doc, dict):
        doc.pop("duration_s", None)
    return json.dumps(doc, sort_keys=True)


def _normalized(res: Any) -> tuple[int, str | None, str, str | None]:
    return res.exit_code, _blank(res.stdout), res.stderr, _blank(res.file)


def _both_ways(cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp: Path, *args: str) -> tuple[Any, Any]:
    """Run ``bastion ARGS`` through the fast path and through Typer; return both (outputs in files too)."""
    from bastion.cli import _scan_command

    results = []
    for way in ("fast", "typer"):
        argv = [a.replace("{out}", str(tmp / f"report-{way}")) for a in args]
        with monkeypatch.context() as m:
            if way == "typer":
                m.setattr(_scan_command, "fast_path", lambda argv: None)
            res = cli(*argv)
        written = tmp / f"report-{way}"
        res.file = written.read_text() if written.exists() else None
        res.stdout = res.stdout.replace(str(tmp / f"report-{way}"), "{out}")
        results.append(res)
    return results[0], results[1]


PARITY_ARGS = [
    ["{ok}"],
    ["{evil}"],
    ["{evil}", "--json"],
    ["{dir}", "--format", "sarif"],
    ["{dir}", "--format=json", "--fail-on", "critical"],
    ["{medium}", "--fail-on=medium", "-f", "json"],
    ["{medium}", "--json", "--digest"],
    ["{dir}", "--format", "sarif", "-o", "{out}"],
    ["{evil}", "-o", "{out}"],
    ["{evil}", "--json", "--output={out}", "--no-digest"],
    # bad input: the same message and exit code 2
    ["{ok}", "--format", "xml"],
    ["{ok}", "--fail-on", "severe"],
    ["{missing}"],
    ["nosuch:9"],
    ["{ok}", "--unknown-option"],
    ["{ok}", "--help"],
    [],
    # short options take no "=" (click reads "-f=json" as the value "=json"), and the report never lands
    # on the scanned file or a folder
    ["{ok}", "-f=json"],
    ["{ok}", "-o", "{ok}"],
    ["{ok}", "--output={ok}", "--json"],
    ["{ok}", "-o", "{dir}"],
]


@pytest.mark.parametrize("args", PARITY_ARGS, ids=[" ".join(a) or "no-target" for a in PARITY_ARGS])
def test_fast_path_and_typer_give_the_same_result(
    cli: Callable[..., Any], project_dir: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    evil, ok, medium = _files(project_dir)
    folder = project_dir / "models"
    folder.mkdir()
    for f in (evil, ok, medium):
        (folder / f.name).write_bytes(f.read_bytes())
    names = {"{ok}": str(ok), "{evil}": str(evil), "{medium}": str(medium), "{dir}": str(folder),
             "{missing}": str(project_dir / "missing.pkl")}
    argv = ["model", "scan", *(names.get(a, a) for a in args)]
    fast, slow = _both_ways(cli, monkeypatch, project_dir, *argv)
    assert _normalized(fast) == _normalized(slow)


@pytest.mark.parametrize(
    "args, fast",
    [
        (["model", "scan", "{ok}"], True),
        (["model", "scan", "{ok}", "--json", "--fail-on", "low", "-o", "r.json", "--digest"], True),
        (["model", "scan", "--format=sarif", "{ok}"], True),
        (["model", "scan", "{ok}", "--help"], False),
        (["--debug", "model", "scan", "{ok}"], False),
        (["model", "scan", "churn:1"], False),  # a registry reference: Typer path
        (["model", "scan", "{ok}", "{ok}"], False),
        (["model", "scan", "{ok}", "--json", "--json"], False),
        (["model", "scan", "{ok}", "--json=yes"], False),
        (["model", "scan", "{ok}", "-o"], False),
        (["model", "scan", "{ok}", "-o", "--json"], False),
        (["model", "scan", "{ok}", "-o=r.json"], False),  # click takes "=r.json" as the value
        (["model", "scan", "{ok}", "-f=json"], False),
        (["model", "scan", "--", "{ok}"], False),
        (["model", "list"], False),
        (["model", "scan"], False),
    ],
)
def test_fast_path_takes_only_plain_scan_command_lines(project_dir: Path, args: list[str], fast: bool) -> None:
    from bastion.cli._scan_command import parse_fast

    _evil, ok, _medium = _files(project_dir)
    assert (parse_fast([a.replace("{ok}", str(ok)) for a in args]) is not None) is fast


def test_output_never_replaces_the_scanned_file_and_write_errors_are_usage_errors(
    cli: Callable[..., Any], project_dir: Path
) -> None:
    evil, _ok, _medium = _files(project_dir)
    link = project_dir / "link.pkl"
    link.symlink_to(evil)
    for out in (str(evil), str(link)):
        res = cli("model", "scan", str(evil), "-o", out)
        assert res.exit_code == 2 and "is the file being scanned" in res.stderr
        assert evil.read_bytes() == EVIL
    res = cli("model", "scan", str(evil), "-o", str(project_dir))
    assert res.exit_code == 2 and "is a folder" in res.stderr and "internal error" not in res.stderr
    res = cli("model", "scan", str(evil), "-o", str(project_dir / "no" / "such" / "dir" / "r.txt"))
    assert res.exit_code == 2 and "Cannot write the report" in res.stderr and "internal error" not in res.stderr


def test_fast_parser_knows_every_option_of_the_typer_command() -> None:
    import typer.main

    from bastion.cli._scan_command import FLAG_OPTIONS, VALUE_OPTIONS
    from bastion.cli.main import app

    group = typer.main.get_command(app).commands["model"]  # type: ignore[attr-defined]
    command = group.commands["scan"]
    declared = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}
    assert declared - {"--help"} == set(VALUE_OPTIONS) | set(FLAG_OPTIONS)
    takes_value = {opt for p in command.params if not getattr(p, "is_flag", False) for opt in p.opts
                   if opt.startswith("-")}
    assert takes_value == set(VALUE_OPTIONS)


def test_fast_path_imports_no_cli_framework(project_dir: Path) -> None:
    from tests.scan.fresh import scan_in_fresh_interpreter

    evil, _ok, _medium = _files(project_dir)
    out, stdout = scan_in_fresh_interpreter(evil, cli=True)
    assert out["code"] == 1
    assert json.loads(stdout)["findings"][0]["rule_id"] == "pickle.dangerous-global"
    forbidden = {"typer", "click", "rich", "pydantic", "pandas", "numpy", "sqlalchemy", "bastion.project", "typing",
                 "logging", "importlib.metadata"}
    assert sorted(forbidden & set(out["new"])) == []
