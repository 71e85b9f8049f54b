"""Serving fixtures: one signed, scanned, gated sample project per session, copied per test that changes it."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import make_config

with warnings.catch_warnings():
    # Starlette's TestClient warns (once, at import) that it uses httpx rather than httpx2: test plumbing only.
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from bastion.serve._sample import build_sample_project

    return build_sample_project(tmp_path_factory.mktemp("serve-sample") / "proj", versions=2, rows=1200)


@pytest.fixture
def sample(sample_template: Any, tmp_path: Path) -> Any:
    """A private copy of the sample project (tests may tamper with it)."""
    from dataclasses import replace

    root = tmp_path / "proj"
    shutil.copytree(sample_template.root, root)
    return replace(sample_template, root=root)


@pytest.fixture
def project(sample: Any) -> Iterator[Any]:
    from bastion.project import open_project

    p = open_project(sample.root)
    yield p
    p.close()


@pytest.fixture
def keys(project: Any) -> dict[str, str]:
    """One key per role, an all-roles admin, and a revoked key."""
    from bastion.serve.auth import create_api_key, revoke_api_key

    out = {role: create_api_key(project, f"k-{role}", [role]).key for role in ("predict", "explain", "admin")}
    out["revoked"] = create_api_key(project, "k-revoked", ["predict", "explain", "admin"]).key
    revoke_api_key(project, "k-revoked", reason="test")
    return out


@pytest.fixture
def client(sample: Any, project: Any, keys: dict[str, str]) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from bastion.serve import create_app

    app = create_app(make_config(sample), project=project)
    app.state.bastion.auth.keys.recheck_s = 0.0  # see revocations at once in tests
    with TestClient(app) as c:
        yield c


