"""skops.io, imported through Bastion, leaves PyTorch unimported and trusts exactly what a plain import trusts."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
{how}
from skops.io import _trusted_types as t
print(json.dumps({{"torch": "torch" in sys.modules, "trusted": sorted(t.SKLEARN_ESTIMATOR_TYPE_NAMES)}}))
"""


def _probe(how: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(how=how)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_skops_io_without_torch_trusts_the_same_estimators() -> None:
    import importlib.util

    assert importlib.util.find_spec("torch") is not None, "the dev extra installs PyTorch: this test needs it"
    ours = _probe("from bastion.flavors._skops import skops_io; skops_io()")
    plain = _probe("import skops.io")
    assert plain["torch"] is True  # the cost this avoids: a plain import pulls PyTorch in
    assert ours["torch"] is False
    assert ours["trusted"] == plain["trusted"] and len(ours["trusted"]) > 100  # type: ignore[arg-type]


def test_the_walk_is_restored_and_a_second_call_is_the_same_module() -> None:
    import pkgutil

    from bastion.flavors._skops import skops_io

    before = pkgutil.walk_packages
    assert skops_io() is skops_io() is sys.modules["skops.io"]
    assert pkgutil.walk_packages is before

