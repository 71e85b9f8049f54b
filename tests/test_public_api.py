"""The top-level Python API: ``bastion.scan`` stays callable after the ``bastion.scan`` subpackage is
imported (it is, by ``log_model`` and by the scanner CLI), and ``__version__`` is the package's."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import bastion


def test_bastion_scan_is_callable_before_and_after_the_subpackage_is_imported(tmp_path: Path) -> None:
    # a fresh interpreter: in this one, some other test may have imported bastion.scan already
    model = tmp_path / "m.pkl"
    model.write_bytes(pickle.dumps({"weights": [1, 2]}))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    code = (
        "import sys, bastion\n"
        "first = bastion.scan(sys.argv[1])\n"
        "import bastion.scan.pickle\n"
        "from bastion.scan import scan_path\n"
        "second = bastion.scan(sys.argv[1])\n"
        "third = bastion.scan(sys.argv[2])\n"
        "print(type(first).__name__, first.is_clean(), second.is_clean(), third.is_clean(), callable(scan_path))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(model), str(bad)], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["ScanReport", "True", "True", "False", "True"]


def test_version_is_exposed() -> None:
    assert isinstance(bastion.__version__, str) and bastion.__version__.count(".") >= 2
