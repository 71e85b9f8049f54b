"""Run a scan in a fresh interpreter and report what it imported (start-up guards, not timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_DRIVER = """\
import json, sys
before = set(sys.modules)
doc = {}
if sys.argv[2] == "cli":
    from bastion.cli.main import main
    try:
        main(["model", "scan", sys.argv[1], "--json"])
        doc["code"] = 0
    except SystemExit as e:
        doc["code"] = e.code
else:
    from bastion.scan import scan_path
    report = scan_path(sys.argv[1])
    doc.update(files=len(report.files), rules=sorted({f.rule_id for f in report.findings}))
doc["new"] = sorted(set(sys.modules) - before)
sys.stderr.write(json.dumps(doc))
"""


def scan_in_fresh_interpreter(target: Path, *, cli: bool = False) -> tuple[dict[str, Any], str]:
    """Scan ``target`` through the CLI's entry point or ``scan_path`` in a new process.

    Returns the driver's document (``new``: modules the scan imported; ``code`` for the CLI; ``files`` and
    ``rules`` for the API) and the process's stdout (the CLI's JSON report).
    """
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(target), "cli" if cli else "api"],
                          capture_output=True, text=True, check=True)
    doc: dict[str, Any] = json.loads(proc.stderr.strip().splitlines()[-1])
    return doc, proc.stdout
