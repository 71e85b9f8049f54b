"""ART's "PyTorch not found" warning (its certification package, imported on every ART import when torch is
missing) does not reach gate runs. A fresh interpreter where ART cannot find torch shows the warning is real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

_HIDE_TORCH = """
import importlib.util, warnings
_find = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if name.split(".")[0] == "torch" else _find(name, package)
warnings.simplefilter("error")
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _HIDE_TORCH + code], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})


def test_plain_art_import_warns_without_torch() -> None:  # the test can fail: the warning is real
    r = _run("import art.estimators.classification")
    assert r.returncode != 0 and "PyTorch not found" in r.stderr


def test_the_gate_imports_art_quietly() -> None:
    r = _run("from bastion.gates.checks._art import black_box_classifier, hop_skip_jump, membership_inference\n"
             "print(hop_skip_jump().__name__, membership_inference().__name__, black_box_classifier().__name__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["HopSkipJump", "MembershipInferenceBlackBox", "BlackBoxClassifier"]
