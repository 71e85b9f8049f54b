"""The vulnerability tables on PostgreSQL (the session's throwaway cluster): import, replace by a newer record,
idempotent re-import, check and stored results, status per alias; the same answers as on SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bastion.store.schema import vuln_advisories, vuln_affected, vuln_results
from bastion.vulns import check_versions, import_advisories, stored_results
from bastion.vulns.status import alias_statuses
from tests.vulns.conftest import installed, osv, write

CVSS_HIGH = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}]


def _counts(project: Any) -> tuple[int, int, int]:
    with project.db.read() as conn:
        return tuple(int(conn.execute(select(func.count()).select_from(t)).scalar_one())  # type: ignore[return-value]
                     for t in (vuln_advisories, vuln_affected, vuln_results))


def test_import_check_and_status_on_postgresql(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from bastion.project import init_project

    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    p = init_project(root, database_url=pg_url)
    try:
        assert p.db.engine.dialect.name == "postgresql"
        mv = p.log_model(LogisticRegression().fit(np.arange(40.0).reshape(20, 2), [0, 1] * 10), name="income")
        p.promote(mv.ref, alias="production")
        sk = installed("scikit-learn")
        first = write(tmp_path / "a.json",
                      osv("GHSA-pg-0001", "Scikit_Learn", events=[{"introduced": "0"}, {"fixed": "999.0"}],
                          aliases=["CVE-2026-9001"], severity=CVSS_HIGH, summary="ü in a summary: UTF-8 kept"),
                      osv("GHSA-pg-old", versions=["0.0.1"]),
                      osv("GHSA-pg-gone", versions=[sk], withdrawn="2026-01-02T00:00:00Z"),
                      osv("GHSA-pg-npm", ecosystem="npm", versions=[sk]))
        r = import_advisories(p, first)
        assert (r.records, r.added, r.withdrawn, r.ignored) == (4, 3, 1, 1)
        assert import_advisories(p, first).unchanged == 3  # idempotent
        assert _counts(p)[:2] == (3, 2)  # the withdrawn record is kept, with nothing it affects

        report = check_versions(p)
        assert report.exit_code == 1
        (v,) = report.versions
        (m,) = v.matches
        assert (m.id, m.package, m.installed, m.severity, m.score, m.fixed) == (
            "GHSA-pg-0001", "scikit-learn", sk, "high", 7.5, "999.0")
        assert [x.id for x in v.new] == ["GHSA-pg-0001"]
        assert stored_results(p)[("income", 1)] == [m]
        (status,) = alias_statuses(p)
        assert (status["name"], status["alias"], status["version"], status["max_severity"]) == (
            "income", "production", 1, "high")
        assert [a["id"] for a in status["advisories"]] == ["GHSA-pg-0001"]
        assert check_versions(p).versions[0].new == ()  # stored results are read back, not duplicated
        assert _counts(p)[2] == 1

        # a newer record of the same advisory says the installed version is fixed: it replaces the old one
        newer = write(tmp_path / "b.json", osv("GHSA-pg-0001", "scikit-learn", modified="2026-02-01T00:00:00Z",
                                               events=[{"introduced": "0"}, {"fixed": "0.0.2"}]))
        assert import_advisories(p, newer).updated == 1
        assert _counts(p)[:2] == (3, 2)
        after = check_versions(p)
        assert after.exit_code == 0 and after.versions[0].matches == ()
        assert stored_results(p)[("income", 1)] == []
    finally:
        p.close()
