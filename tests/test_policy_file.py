"""One owner for bastion-policy.yaml: every documented section at once, unknown sections refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.errors import ConfigError
from bastion.policy_file import (
    document_from_mapping,
    load_yaml,
    read_policy_file,
    register_section,
    registered_sections,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _documented_sections() -> dict[str, Any]:
    """Every ```yaml block of the user docs whose top-level keys are policy sections, merged."""
    known = {k for s in registered_sections().values() for k in s.keys}
    merged: dict[str, Any] = {}
    for page in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
            try:
                data = load_yaml(block)
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and data and set(data) <= known:
                for k, v in data.items():
                    if isinstance(v, dict) and isinstance(merged.get(k), dict):
                        merged[k] = {**merged[k], **v}
                    else:
                        merged[k] = v
    return merged


def test_every_documented_section_at_once(tmp_path: Path) -> None:
    from bastion.data.protect.policy import load_policy as load_protection
    from bastion.gates.policy import load_policy
    from bastion.monitor.config import load_monitoring_config

    data = _documented_sections()
    for section in ("version", "checks", "aliases", "protection", "reveal", "monitoring"):
        assert section in data, f"docs no longer show the '{section}' section"
    f = tmp_path / "bastion-policy.yaml"
    f.write_text(yaml.safe_dump(data), encoding="utf-8")
    gate = load_policy(f)
    assert gate.checks and gate.aliases and gate.reveal
    assert load_protection(f).columns
    monitoring = load_monitoring_config(f)
    assert monitoring.drift.verdict == data["monitoring"]["drift"]["verdict"]
    assert monitoring.alerts.rollback.on == ["data_drift", "performance"]  # YAML 1.1 would read `on:` as True
    # The gate digest covers only the gate's sections: other owners' sections never change it.
    only_gate = {k: v for k, v in data.items() if k not in {"protection", "reveal", "monitoring"}}
    g = tmp_path / "gate-only.yaml"
    g.write_text(yaml.safe_dump(only_gate), encoding="utf-8")
    assert load_policy(g).digest == gate.digest


@pytest.mark.parametrize(
    "text,problem",
    [
        ("version: 1\nmonitorin: {}\n", r"line 2, 'monitorin': unknown section"),
        ("version: 1\ngates: {}\n", r"'gates': unknown section"),
        ("version: 1\nmonitoring: {drift: {verdict: sometimes}}\n", r"monitoring"),
        ("version: 1\nprotection: {columns: {ssn: shred}}\n", r"protection\.columns\.ssn"),
        ("version: 1\nreveal: {auditor: {actors: []}}\n", r"reveal\.auditor"),
        ("monitoring: {}\nchecks: {performance: {}}\n", r"version"),  # a gate key present: the gate validates
        ("- a\n- b\n", r"must be a YAML mapping"),
        ("version: [1\n", r"not valid YAML"),
    ],
)
def test_bad_files_are_refused_by_the_right_owner(tmp_path: Path, text: str, problem: str) -> None:
    f = tmp_path / "bastion-policy.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        read_policy_file(f)


def test_a_section_of_one_stage_never_breaks_another(tmp_path: Path) -> None:
    from bastion.gates.policy import load_policy
    from bastion.monitor.config import load_monitoring_config

    f = tmp_path / "bastion-policy.yaml"
    f.write_text("monitoring: {drift: {alpha: 0.01}}\n", encoding="utf-8")
    assert load_monitoring_config(f).drift.alpha == 0.01
    with pytest.raises(ConfigError, match="version"):
        load_policy(f)  # the gate needs its own keys; the monitoring section is not its business
    f.write_text("version: 1\nmonitoring: {drift: {alpha: 0.01}}\n", encoding="utf-8")
    assert load_policy(f).version == 1


def test_edits_are_seen_at_once(tmp_path: Path) -> None:
    from bastion.gates.policy import load_policy

    f = tmp_path / "bastion-policy.yaml"
    f.write_text("version: 1\nseed: 1\n", encoding="utf-8")
    assert load_policy(f).seed == 1
    f.write_text("version: 1\nseed: 2\n", encoding="utf-8")  # same size, same second
    assert load_policy(f).seed == 2
    assert read_policy_file(f) is read_policy_file(f)  # unchanged bytes: parsed once


def test_two_owners_cannot_claim_one_section() -> None:
    with pytest.raises(ConfigError, match="already owned by 'monitoring'"):
        register_section("intruder", {"monitoring"}, lambda doc: None)
    assert "intruder" not in registered_sections()


def test_dict_documents_go_through_the_same_owners() -> None:
    with pytest.raises(ConfigError, match="'extra': unknown section"):
        document_from_mapping({"version": 1, "extra": 1})
