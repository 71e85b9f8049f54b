"""Scanner test fixtures: the malicious/benign corpus, built once per test session."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

CORPUS_DIR = Path(__file__).parent / "corpus"


def load_corpus_module(name: str) -> Any:
    """Import ``tests/scan/corpus/<name>.py`` by path (tests/ is not a package)."""
    key = f"bastion_scan_corpus_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, CORPUS_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.fixture(scope="session")
def scan_corpus(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The corpus (a ``generate.Corpus``) under a session temp dir.

    The canary lives outside the corpus folder: scanning must never create it.
    """
    generate = load_corpus_module("generate")
    base = tmp_path_factory.mktemp("scan-corpus")
    canary = base / "canary" / "PWNED"
    canary.parent.mkdir()
    root = base / "corpus"
    samples = generate.build_corpus(root, canary)
    assert not canary.exists(), "building the corpus must not run any payload"
    return generate.Corpus(root=root, canary=canary, samples=tuple(samples))
