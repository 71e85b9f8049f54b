"""Matching against recorded environments: per-version results, what is new, exit codes, the CLI door."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app, main
from bastion.vulns import check_versions, import_advisories, stored_results
from tests.vulns.conftest import installed, osv, write

runner = CliRunner()


def test_affected_version_lists_ids_aliases_severity_and_fix(served: Any, tmp_path: Path) -> None:
    sk = installed("scikit-learn")
    rec = osv("GHSA-sk-0001", "Scikit_Learn", events=[{"introduced": "0"}, {"fixed": "999.0"}],
              aliases=["CVE-2026-0001"], severity=[{"type": "CVSS_V3",
                                                    "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}])
    import_advisories(served, write(tmp_path / "a.json", rec))
    report = check_versions(served)
    assert report.exit_code == 1
    (v,) = report.versions
    assert (v.ref, v.aliases) == ("income:1", ("production",))
    (m,) = v.matches
    assert (m.id, m.package, m.installed, m.aliases) == ("GHSA-sk-0001", "scikit-learn", sk, ("CVE-2026-0001",))
    assert (m.severity, m.score, m.fixed) == ("high", 7.5, "999.0")
    assert [x.id for x in v.new] == ["GHSA-sk-0001"]
    assert stored_results(served)[("income", 1)] == [m]
    again = check_versions(served)
    assert again.versions[0].new == () and again.exit_code == 1


def test_record_for_another_version_leaves_exit_zero(served: Any, tmp_path: Path) -> None:
    sk = installed("scikit-learn")
    recs = [osv("GHSA-old", versions=["0.0.1"]), osv("GHSA-range", events=[{"introduced": "0"}, {"fixed": sk}]),
            osv("GHSA-npm", "scikit-learn", ecosystem="npm", versions=[sk]),
            osv("GHSA-gone", versions=[sk], withdrawn="2026-01-02T00:00:00Z")]
    import_advisories(served, write(tmp_path / "a.json", *recs))
    report = check_versions(served)
    assert report.exit_code == 0 and report.versions[0].matches == ()


def test_only_aliased_versions_are_checked_by_default(served: Any, tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    served.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="income")  # income:2, no alias
    import_advisories(served, write(tmp_path / "a.json", osv("GHSA-x", versions=[installed("scikit-learn")])))
    assert [v.ref for v in check_versions(served).versions] == ["income:1"]
    assert [v.ref for v in check_versions(served, "income:2").versions] == ["income:2"]


def test_a_version_without_readable_environment_fails_closed(served: Any, tmp_path: Path) -> None:
    from sqlalchemy import update

    from bastion.store.schema import models

    with served.transaction() as conn:
        conn.execute(update(models).values(environment_digest=None))
    report = check_versions(served)
    assert report.versions[0].error == "no recorded environment"
    assert report.exit_code == 1


def test_cli_check_exit_codes_and_names(served: Any, tmp_path: Path) -> None:
    sk = installed("scikit-learn")
    r = runner.invoke(app, ["vulns", "check"])
    assert r.exit_code == 0, r.output
    assert "no advisories imported yet" in r.output
    write(tmp_path / "a.json", osv("GHSA-cli-0001", versions=[sk]))
    r = runner.invoke(app, ["vulns", "import", str(tmp_path / "a.json")])
    assert r.exit_code == 0 and "1 new" in r.output, r.output
    r = runner.invoke(app, ["vulns", "check"])
    assert r.exit_code == 1, r.output
    assert "income@production" in r.output and "scikit-learn" in r.output and "GHSA-cli-0001" in r.output
    r = runner.invoke(app, ["vulns", "check", "income@production", "--json", "--no-alerts"])
    assert r.exit_code == 1
    doc = json.loads(r.output)
    assert doc["affected"] == ["income:1"] and doc["versions"][0]["matches"][0]["id"] == "GHSA-cli-0001"


def test_cli_bad_input_is_exit_two_without_traceback(served: Any, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    for argv in (["vulns", "import", str(tmp_path / "bad.json")], ["vulns", "import", str(tmp_path / "none.zip")],
                 ["vulns", "check", "nosuch@production"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2, argv


def test_model_show_lists_the_advisories(served: Any, tmp_path: Path) -> None:
    import_advisories(served, write(tmp_path / "a.json", osv("GHSA-show", versions=[installed("scikit-learn")],
                                                             aliases=["CVE-2026-9"])))
    r = runner.invoke(app, ["model", "show", "income@production", "--json"])
    assert json.loads(r.output)["vulnerabilities"]["status"] == "unchecked"
    check_versions(served)
    r = runner.invoke(app, ["model", "show", "income@production"])
    assert "vulnerabilities: affected" in r.output and "GHSA-show (CVE-2026-9)" in r.output
    doc = json.loads(runner.invoke(app, ["model", "show", "income:1", "--json"]).output)["vulnerabilities"]
    assert doc["status"] == "affected" and doc["advisories"][0]["id"] == "GHSA-show"


def test_ml_bom_carries_the_vulnerabilities(served: Any, tmp_path: Path) -> None:
    from bastion.gates.card import cyclonedx_bom

    sk = installed("scikit-learn")
    import_advisories(served, write(tmp_path / "a.json", osv(
        "GHSA-bom", versions=[sk], aliases=["CVE-2026-7"], summary="bad",
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}])))
    assert "vulnerabilities" not in cyclonedx_bom(served, "income:1")
    check_versions(served)
    doc = cyclonedx_bom(served, "income:1")  # validated against the CycloneDX 1.6 schema
    (v,) = doc["vulnerabilities"]
    assert v["id"] == "GHSA-bom" and v["references"][0]["id"] == "CVE-2026-7"
    assert v["ratings"][0] == {"severity": "critical", "score": 9.8, "method": "CVSSv31", "source": {"name": "OSV"},
                               "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
    refs = {c["bom-ref"] for c in doc["components"]}
    assert v["affects"][0]["ref"] in refs and f"@{sk}" in v["affects"][0]["ref"]
