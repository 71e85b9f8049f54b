"""Every benchmark result page names its environment: pip freeze beside it, the load, the versions (issue 18).

Static and cheap: reads bench/*/RESULTS*.md and the files beside them. How a run records them:
bench/_freeze.py (``record_environment``); the rules: docs/dev/conventions.md, "Benchmarks".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
# The result pages that follow the rules. Pages re-run before the rule (serving's follow-up/quiet history
# pages and SOAK.md, whose freeze is in env-soak/) say so at their top and join this list when their
# benchmark is re-run with bench/_freeze.py.
PAGES = [
    "bench/gates/RESULTS.md",
    "bench/monitor/RESULTS.md",
    "bench/pii/RESULTS.md",
    "bench/registry/RESULTS-pg-s3.md",
    "bench/registry/RESULTS.md",
    "bench/scan/RESULTS.md",
    "bench/serving/RESULTS.md",
    "bench/signing/RESULTS.md",
    "bench/trust/RESULTS.md",
    "bench/ui/RESULTS.md",
    "bench/vulns/RESULTS.md",
]

# "load average 1.2 / 0.9 / 0.8", "load average at the start: 11.5", "load average at end (1/5/15 min): 2.0"
_LOAD = re.compile(r"load average(?: at (?:the )?(?:start|end))?(?: \(1/5/15 min\))?[:\s]*\d+(\.\d+)?", re.I)
_PYTHON = re.compile(r"\bPython:? 3\.\d+", re.I)
_FREEZE_REF = re.compile(r"freeze-(?:[A-Za-z0-9][A-Za-z0-9_.-]*|\*)\.txt")  # one file, or all: freeze-*.txt
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*==\S+$", re.M)


def problems_of(page: Path) -> list[str]:
    """What a result page lacks; empty when it names load, versions and an existing pip freeze beside it."""
    text = page.read_text(encoding="utf-8")
    out = []
    freezes = sorted(page.parent.glob("freeze-*.txt"))
    if not freezes:
        out.append("no freeze-*.txt beside it (record one with bench/_freeze.py)")
    for f in freezes:
        if not _PIN.search(f.read_text(encoding="utf-8")):
            out.append(f"{f.name} lists no pinned package (name==version)")
    if not _LOAD.search(text):
        out.append("no 'load average <number>' line")
    if not _PYTHON.search(text):
        out.append("names no Python version ('Python 3.N')")
    refs = set(_FREEZE_REF.findall(text))
    if not refs:
        out.append("names none of its freeze-*.txt files")
    out += [f"names {ref}, which is not beside it" for ref in sorted(refs)
            if ref != "freeze-*.txt" and not (page.parent / ref).is_file()]
    return out


def test_every_listed_page_exists() -> None:
    found = {p.relative_to(ROOT).as_posix() for p in BENCH.glob("*/RESULTS*.md")}
    assert set(PAGES) <= found, sorted(set(PAGES) - found)


@pytest.mark.parametrize("page", PAGES)
def test_result_page_names_load_versions_and_its_pip_freeze(page: str) -> None:
    problems = problems_of(ROOT / page)
    assert not problems, f"{page}: " + "; ".join(problems)


_GOOD = """# results
Run 2026-12-07 at commit abc1234; load average 1.50 / 2.00 / 2.50 at start (1/5/15 min).
Interpreters: bastion: Python 3.11.7; packages: `freeze-bastion.txt`.
"""


@pytest.mark.parametrize(("text", "freeze", "problem"), [
    (_GOOD, "numpy==2.4.6\n", None),
    (_GOOD, None, "no freeze-*.txt beside it"),
    (_GOOD, "# python 3.11 only a header\n", "lists no pinned package"),
    (_GOOD.replace("load average 1.50", "load 1.50"), "numpy==2.4.6\n", "no 'load average <number>' line"),
    (_GOOD.replace("load average 1.50 / 2.00 / 2.50", "load average high"), "numpy==2.4.6\n",
     "no 'load average <number>' line"),
    (_GOOD.replace("load average 1.50 / 2.00 / 2.50 at start", "load average at the start: 11.52 12.47"),
     "numpy==2.4.6\n", None),
    (_GOOD.replace("Python 3.11.7", "Python"), "numpy==2.4.6\n", "names no Python version"),
    (_GOOD.replace("`freeze-bastion.txt`", "pip freeze"), "numpy==2.4.6\n", "names none of its freeze"),
    (_GOOD.replace("freeze-bastion.txt", "freeze-mlflow.txt"), "numpy==2.4.6\n",
     "names freeze-mlflow.txt, which is not beside it"),
    (_GOOD.replace("`freeze-bastion.txt`", "every venv's `freeze-*.txt`"), "numpy==2.4.6\n", None),
    (_GOOD.replace("`freeze-bastion.txt`", "every venv's `freeze-*.txt`"), None, "no freeze-*.txt beside it"),
    (_GOOD.replace("Python 3.11.7", "python: 3.11.7"), "numpy==2.4.6\n", None),
])
def test_the_check_catches_what_a_page_lacks(tmp_path: Path, text: str, freeze: str | None,
                                              problem: str | None) -> None:
    page = tmp_path / "RESULTS.md"
    page.write_text(text, encoding="utf-8")
    if freeze is not None:
        (tmp_path / "freeze-bastion.txt").write_text(freeze, encoding="utf-8")
    found = problems_of(page)
    if problem is None:
        assert found == []
    else:
        assert any(problem in p for p in found), found
