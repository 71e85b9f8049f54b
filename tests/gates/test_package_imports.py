"""bastion.gates loads its heavy parts on first use: reading a policy (the vulns commands do) imports no pandas."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bastion.gates as gates


def test_reading_a_policy_imports_neither_pandas_nor_the_checks() -> None:
    code = ("import sys, bastion.gates.policy, bastion.vulns.policy\n"
            "heavy = sorted(m for m in ('pandas', 'sklearn', 'bastion.gates.checks', 'bastion.gates.run') "
            "if m in sys.modules)\n"
            "print(','.join(heavy) or 'none')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "none"


def test_every_public_name_still_resolves_to_its_module() -> None:
    from bastion.gates.policy import load_policy
    from bastion.gates.run import run_gate

    assert gates.run_gate is run_gate and gates.load_policy is load_policy
    for name in gates.__all__:
        assert getattr(gates, name).__name__ == name
    assert set(gates.__all__) <= set(dir(gates))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gates.nope
    with pytest.raises(ImportError):
        from bastion.gates import nope  # noqa: F401
