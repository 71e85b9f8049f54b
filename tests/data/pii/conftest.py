"""Fixtures for the PII tests: the generated, labelled corpus (see corpus.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import corpus as _corpus


@pytest.fixture(scope="session")
def corpus_mod():
    return _corpus


@pytest.fixture(scope="session", params=[True, False], ids=["neutral-names", "real-names"])
def labelled(request):
    return _corpus.make_table(600, seed=11, neutral=request.param)


@pytest.fixture(autouse=True)
def _no_custom_patterns():
    from bastion.data.pii import clear_patterns

    clear_patterns()
    yield
    clear_patterns()
