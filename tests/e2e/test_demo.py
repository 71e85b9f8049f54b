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
