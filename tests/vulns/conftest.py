"""Fixtures for vulnerability tests: OSV records written here, a project with a served model."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest


def osv(
    rid: str,
    package: str = "scikit-learn",
    *,
    events: list[dict[str, str]] | None = None,
    versions: list[str] | None = None,
    ecosystem: str = "PyPI",
    modified: str = "2026-01-01T00:00:00Z",
    aliases: list[str] | None = None,
    withdrawn: str | None = None,
    severity: list[dict[str, str]] | None = None,
    db_severity: str | None = None,
    summary: str = "",
) -> dict[str, Any]:
    """One OSV record (schema 1.6 shape) affecting ``package``."""
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": package}}
    if events is not None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": events}]
    if versions is not None:
        affected["versions"] = versions
    rec: dict[str, Any] = {"schema_version": "1.6.0", "id": rid, "modified": modified, "affected": [affected]}
    if aliases:
        rec["aliases"] = aliases
    if withdrawn:
        rec["withdrawn"] = withdrawn
    if severity:
        rec["severity"] = severity
    if db_severity:
        rec["database_specific"] = {"severity": db_severity}
    if summary:
        rec["summary"] = summary
    return rec


def write(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text(json.dumps(records[0] if len(records) == 1 else list(records)), encoding="utf-8")
    return path


def installed(dist: str) -> str:
    return importlib.metadata.version(dist)


@pytest.fixture
def served(project: Any) -> Any:
    """``project`` with ``income:1`` (a scikit-learn model) under ``production``."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.arange(40, dtype=float).reshape(20, 2)
    model = LogisticRegression().fit(X, [0, 1] * 10)
    mv = project.log_model(model, name="income")
    project.promote(mv.ref, alias="production")
    return project
