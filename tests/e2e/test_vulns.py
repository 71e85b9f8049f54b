"""End to end: a promoted model, an advisory for a package in its recorded environment arrives; `vulns check`
exits 1 naming model, package and advisory, the alert fires, a new promotion is refused, the dashboard shows it,
and a scheduled monitoring pass rolls production back to the newest unaffected version."""

from __future__ import annotations

import importlib.metadata
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.errors import PolicyViolation
from bastion.monitor.alerts import stored_alerts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401

runner = CliRunner()
SK = importlib.metadata.version("scikit-learn")
POLICY = """version: 1
checks:
  vulnerabilities:
    max_severity: medium
aliases:
  production:
    requires: [vulnerabilities]
    rollback_on: [vulnerability]
"""


def _record(rid: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "modified": "2026-06-01T00:00:00Z", "aliases": [f"CVE-2026-{rid[-4:]}"],
            "affected": [{"package": {"ecosystem": "PyPI", "name": "scikit-learn"}, "versions": [version],
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}]
                          if extra.pop("ranged", False) else []}],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}], **extra}


def _old_environment(project: Any, ref: str) -> None:
    """Pretend ``ref`` was trained with an older scikit-learn (its recorded environment says so)."""
    from sqlalchemy import update

    from bastion.store.schema import models

    env = json.loads(project.blobs.get_bytes(project.get_model(ref).environment_digest))
    env["packages"]["scikit-learn"] = "0.0.1"
    digest = project.blobs.put_bytes(json.dumps(env, sort_keys=True).encode())
    name, version = ref.split(":")
    with project.transaction() as conn:
        conn.execute(update(models).where(models.c.name == name, models.c.version == int(version))
                     .values(environment_digest=digest))


def test_advisory_lifecycle(project: Any, tmp_path: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.arange(40, dtype=float).reshape(20, 2)
    y = [0, 1] * 10
    for c in (0.5, 1.0, 2.0):
        project.log_model(LogisticRegression(C=c).fit(X, y), name="income")
    _old_environment(project, "income:1")
    (project.root / "bastion-policy.yaml").write_text(POLICY, encoding="utf-8")
    project.promote("income:1", alias="production")
    project.promote("income:2", alias="production")

    rec = tmp_path / "GHSA-e2e-0001.json"
    rec.write_text(json.dumps(_record("GHSA-e2e-0001", SK)), encoding="utf-8")
    assert runner.invoke(app, ["vulns", "import", str(rec)]).exit_code == 0

    # the check names model, package and advisory, exits 1, and the alert fires (once)
    r = runner.invoke(app, ["vulns", "check"])
    assert r.exit_code == 1, r.output
    assert "income@production" in r.output and "scikit-learn" in r.output and "GHSA-e2e-0001" in r.output
    alerts = stored_alerts(project.db, kind="alert")
    assert [(a["rule"], a["model"], a["severity"]) for a in alerts] == [("vulnerability", "income:2", "critical")]
    assert "GHSA-e2e-0001" in alerts[0]["message"] and "CVE-2026-0001" in alerts[0]["message"]
    # the policy says roll back on a vulnerability: income:1 (older scikit-learn) is clean and unaffected
    assert project.get_model("income@production").version == 1
    assert runner.invoke(app, ["vulns", "check"]).exit_code == 0  # production is unaffected now

    # the gate refuses a new promotion while the advisory matches
    with pytest.raises(PolicyViolation, match="GHSA-e2e-0001"):
        project.promote("income:3", alias="production")
    r = runner.invoke(app, ["model", "promote", "income:3", "--alias", "production"])
    assert r.exit_code == 1

    # the dashboard shows the per-alias status and the advisory list on the version page
    from starlette.testclient import TestClient

    from bastion.ui import create_ui_app
    from bastion.ui.users import UserStore

    UserStore(project).add("viewer", "viewer-pass-1", role="viewer")
    project.promote("income:2", alias="staging")
    assert runner.invoke(app, ["vulns", "check"]).exit_code == 1
    with TestClient(create_ui_app(project.root), base_url="http://127.0.0.1") as client:
        import re

        page = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        client.post("/login", data={"csrf": csrf, "username": "viewer", "password": "viewer-pass-1", "next": "/"})
        home = client.get("/").text
        assert 'data-alias="production" data-status="clean"' in home
        assert 'data-alias="staging" data-status="affected"' in home and "GHSA-e2e-0001" in home
        page = client.get("/models/income/2").text
        assert 'id="vuln-status">affected<' in page and "CVE-2026-0001" in page and "GHSA-e2e-0001" in page
        bom = client.get("/models/income/2/bom.json").json()
        assert [v["id"] for v in bom["vulnerabilities"]] == ["GHSA-e2e-0001"]


def test_scheduled_pass_rechecks_and_rescans(project: Any, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sklearn.dummy import DummyClassifier

    from bastion.vulns import import_advisories
    from bastion.vulns.monitor import is_due, monitor_vulnerabilities

    project.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="income")
    project.promote("income:1", alias="production")
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert is_due(project, "income", timedelta(days=1), now=now)
    doc = monitor_vulnerabilities(project, "income", now=now)
    assert doc["exit_code"] == 0 and len(doc["rescans"]) == 1 and doc["rescans"][0]["status"] == "clean"
    assert not is_due(project, "income", timedelta(days=1), now=now + timedelta(hours=23))
    assert is_due(project, "income", timedelta(days=1), now=now + timedelta(days=1))
    (tmp_path / "a.json").write_text(json.dumps(_record("GHSA-mon-0002", SK)), encoding="utf-8")
    import_advisories(project, tmp_path / "a.json")
    doc = monitor_vulnerabilities(project, "income", now=now + timedelta(days=1))
    assert doc["exit_code"] == 1 and doc["check"]["affected"] == ["income:1"]
    assert [a["rule"] for a in doc["alerts"]] == ["vulnerability"]
    assert doc["rollbacks"] == []  # no rollback_on in a policy: the alias stays, the alert says why
