"""Report outputs: JSON (schema_version 1, round trip), SARIF 2.1.0 structure, text."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from bastion.scan import Finding, ScanReport, Severity, scan_path
from bastion.scan.report import RULES, to_text

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."


@pytest.fixture
def report(tmp_path: Path) -> ScanReport:
    (tmp_path / "evil.pkl").write_bytes(EVIL)
    (tmp_path / "trailing.pkl").write_bytes(pickle.dumps(1, protocol=4) + b"junk")
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([1, 2], protocol=4))
    return scan_path(tmp_path, digest=True)


def test_severity_order_and_parse() -> None:
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert Severity.parse("High") is Severity.HIGH
    with pytest.raises(ValueError, match="must be one of"):
        Severity.parse("severe")


def test_is_clean_threshold(report: ScanReport) -> None:
    assert report.max_severity == Severity.CRITICAL
    assert not report.is_clean()
    empty = ScanReport(target="x", files=(), findings=())
    assert empty.is_clean() and empty.max_severity is None
    medium = ScanReport("x", (), (Finding("r", Severity.MEDIUM, "f", None, None, "c", "m", "r"),))
    assert medium.is_clean(Severity.HIGH)
    assert not medium.is_clean("medium")


def test_json_schema_and_round_trip(report: ScanReport) -> None:
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["schema_version"] == 1
    assert doc["summary"]["max_severity"] == "critical"
    assert doc["summary"]["files"] == 3
    assert all(len(f["sha256"]) == 64 for f in doc["files"])
    again = ScanReport.from_dict(doc)
    assert again.findings == report.findings
    assert again.files == report.files
    with pytest.raises(ValueError, match="schema_version"):
        ScanReport.from_dict({**doc, "schema_version": 99})


def test_sarif_structure(report: ScanReport) -> None:
    sarif = json.loads(json.dumps(report.to_sarif()))
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    run = sarif["runs"][0]
    driver = run["tool"]["driver"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert {"pickle.dangerous-global", "pickle.trailing-data"} <= set(rule_ids)
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert float(rule["properties"]["security-severity"]) >= 0
    assert len(run["results"]) == len(report.findings)
    for result in run["results"]:
        assert result["ruleId"] in rule_ids
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
        assert result["message"]["text"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"].startswith("file:///")
        assert isinstance(loc["region"]["byteOffset"], int)
    crit = next(r for r in run["results"] if r["ruleId"] == "pickle.dangerous-global")
    assert crit["level"] == "error"
    assert crit["locations"][0]["physicalLocation"]["region"]["byteOffset"] == EVIL.index(b"R")
    assert {a["location"]["uri"].rsplit("/", 1)[1] for a in run["artifacts"]} == {"evil.pkl", "ok.pkl", "trailing.pkl"}


def test_sarif_inner_paths_use_logical_locations(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "m.zip", "w") as zf:
        zf.writestr("x/model.pkl", EVIL)
    (result,) = scan_path(tmp_path / "m.zip").to_sarif()["runs"][0]["results"]
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "x/model.pkl"
    assert "region" not in result["locations"][0]["physicalLocation"]


def test_text_rendering_names_rules(report: ScanReport) -> None:
    text = to_text(report)
    assert "pickle.dangerous-global" in text
    assert "critical" in text
    assert "Result: 2 finding(s), worst: critical" in text


def test_every_builtin_rule_is_described() -> None:
    import re

    src = Path(__file__).parents[2] / "src" / "bastion" / "scan"
    used = set()
    for path in src.glob("*.py"):
        used |= set(re.findall(r'"((?:pickle|limit|archive|torch|numpy|keras|onnx|safetensors|gguf|format|fs|scan)'
                               r'\.[a-z0-9-]+)"', path.read_text()))
    from bastion.scan import _policy

    # the restricted unpickler names allowlisted globals ("numpy.ndarray") in the same shape as rule ids
    missing = sorted(used - set(RULES) - _policy.allowlist())
    assert missing == []
