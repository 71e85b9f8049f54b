"""Record the ``pip freeze`` of every virtual environment a benchmark run used, beside its results.

Usage from a benchmark script::

    from bench._freeze import record_freezes
    record_freezes(Path(__file__).parent, {"bastion": sys.executable, "mlflow": "/work/bench-venvs/mlflow/bin/python"})

or from the shell: ``python bench/_freeze.py bench/serving bastion=/work/venv/bin/python mlflow=/work/bench-venvs/mlflow/bin/python``.
Writes ``freeze-<name>.txt`` (the interpreter's version, the date, then ``pip freeze``) for each one.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["freeze_text", "record_freezes"]


def freeze_text(python: str) -> str:
    """``pip freeze`` of the environment of interpreter ``python``, headed by its version and the date."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True, check=True, timeout=60).stdout.strip()
    frozen = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True,
                            timeout=120).stdout
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return f"# python {version} ({python}), recorded {stamp}\n{frozen}"


def record_freezes(results_dir: str | os.PathLike[str], interpreters: dict[str, str]) -> list[Path]:
    """Write ``freeze-<name>.txt`` into ``results_dir`` for each ``name -> python`` pair; returns the paths."""
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, python in interpreters.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ValueError(f"venv name must be letters, digits, '.', '_' or '-'; got {name!r}")
        path = out_dir / f"freeze-{name}.txt"
        path.write_text(freeze_text(python), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        sys.stderr.write("usage: python bench/_freeze.py RESULTS_DIR NAME=PYTHON [NAME=PYTHON ...]\n")
        return 2
    pairs = dict(a.split("=", 1) for a in argv[1:])
    for path in record_freezes(argv[0], pairs):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
