"""`bastion demo` runs the whole lifecycle end to end in a fresh folder, as `make demo` does."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    proc = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=420,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Demo complete" in proc.stdout
    assert "chain intact" in proc.stdout
    assert (tmp_path / "demo" / ".bastion" / "bastion.db").is_file()
    _vulnerability_bar(tmp_path / "demo", env)


def _vulnerability_bar(demo: Path, env: dict[str, str]) -> None:
    """Issue 19's bar, on the demo project: one OSV record for the installed scikit-learn makes `vulns check`
    exit 1 naming the production model, the package and the advisory id; one for another version leaves 0."""
    import importlib.metadata
    import json

    def bastion(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bastion.cli", *args], capture_output=True, text=True,
                              timeout=120, env=env, cwd=demo, check=False)

    def record(rid: str, version: str) -> Path:
        path = demo.parent / f"{rid}.json"
        path.write_text(json.dumps({"schema_version": "1.6.0", "id": rid, "modified": "2026-06-01T00:00:00Z",
                                    "affected": [{"package": {"ecosystem": "PyPI", "name": "scikit-learn"},
                                                  "versions": [version]}]}), encoding="utf-8")
        return path

    assert bastion("vulns", "import", str(record("GHSA-demo-0000-0002", "0.0.1"))).returncode == 0
    proc = bastion("vulns", "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = importlib.metadata.version("scikit-learn")
    assert bastion("vulns", "import", str(record("GHSA-demo-0000-0001", installed))).returncode == 0
    proc = bastion("vulns", "check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    named = [line for line in proc.stdout.splitlines() if "@production" in line and "GHSA-demo-0000-0001" in line]
    assert named and "income" in named[0] and "scikit-learn" in named[0], proc.stdout


def test_demo_without_a_folder_leaves_nothing_in_the_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --dir the throwaway project is removed at the end, also when a stage fails; with --dir it stays."""
    import tempfile

    from rich.console import Console

    from bastion.demo import run as demo_run

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    seen: list[Path] = []

    def stage(ctx: demo_run.DemoContext) -> None:
        ctx.project.audited("demo.stage", "x")
        seen.append(ctx.workdir)

    def failing(ctx: demo_run.DemoContext) -> None:
        raise RuntimeError("stage failed")

    console = Console(file=io.StringIO())
    monkeypatch.setattr(demo_run, "_stages", lambda: [("one", stage)])
    demo_run.run_demo(console=console)
    assert seen and seen[0].parent == tmp_path / "tmp" and seen[0].name.startswith("bastion-demo-")
    assert list((tmp_path / "tmp").iterdir()) == []
    assert "removed" in console.file.getvalue()  # type: ignore[attr-defined]

    monkeypatch.setattr(demo_run, "_stages", lambda: [("one", failing)])
    with pytest.raises(RuntimeError, match="stage failed"):
        demo_run.run_demo(console=console)
    assert list((tmp_path / "tmp").iterdir()) == []

    monkeypatch.setattr(demo_run, "_stages", lambda: [("one", stage)])
    demo_run.run_demo(tmp_path / "kept", console=console)
    assert (tmp_path / "kept" / ".bastion" / "bastion.db").is_file()
