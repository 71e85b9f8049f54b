"""`bastion demo` runs the whole lifecycle end to end in a fresh folder, as `make demo` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
