"""Refusals are audited by the library, and a flood is aggregated per actor, reason and minute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.audit import refusals
from bastion.audit.refusals import flush_refusals, record_refusal


def _refusals(project: Any, action: str) -> list[Any]:
    return [e for e in project.audit.entries(action=action, newest_first=False) if e.action == action]


def test_flood_is_one_entry_plus_a_count(project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    minute = ["2026-01-01T10:00Z"]
    monkeypatch.setattr(refusals, "_minute", lambda: minute[0])
    for _ in range(500):
        record_refusal(project, "model.refused", "m:1", "gate failed", {"alias": "production"})
    record_refusal(project, "model.refused", "m:1", "not signed", {"alias": "production"})
    entries = _refusals(project, "model.refused")
    assert [(e.details["reason"], e.details["count"]) for e in entries] == [("gate failed", 1), ("not signed", 1)]
    minute[0] = "2026-01-01T10:01Z"
    record_refusal(project, "model.refused", "m:1", "gate failed", {"alias": "production"})
    entries = _refusals(project, "model.refused")
    counted = [(e.details["reason"], e.details["count"], e.details.get("aggregated", False)) for e in entries]
    # the 499 repeats of minute 10:00 became one entry when the minute closed; 10:01 starts afresh
    assert counted == [("gate failed", 1, False), ("not signed", 1, False), ("gate failed", 499, True),
                       ("gate failed", 1, False)]
    assert flush_refusals(project) == 0
    assert project.audit.verify().ok


def test_actors_are_counted_apart_and_flushed(project: Any) -> None:
    for who in ("mallory", "mallory", "eve"):
        record_refusal(project, "data.reveal.denied", "x.parquet", "wrong key", actor=who)
    assert flush_refusals(project) == 1  # mallory's second attempt
    by_actor = [(e.actor, e.details["count"]) for e in _refusals(project, "data.reveal.denied")]
    assert sorted(by_actor) == [("eve", 1), ("mallory", 1), ("mallory", 1)]


def test_refused_promotion_and_forbidden_force_are_audited(project: Any, tmp_path: Path, toy_model: Any) -> None:
    from bastion.errors import PolicyViolation

    (project.root / "bastion-policy.yaml").write_text(
        "version: 1\naliases:\n  production:\n    requires: [gate]\n    force_allowed: [release-lead]\n",
        encoding="utf-8",
    )
    mv = project.log_model(toy_model, name="m")
    with pytest.raises(PolicyViolation):
        project.promote(mv.ref, alias="production")
    with pytest.raises(PolicyViolation, match="may not force"):
        project.promote(mv.ref, alias="production", force_reason="hotfix")
    refused = _refusals(project, "model.refused")
    assert len(refused) == 1 and "no gate attestation" in refused[0].details["reason"]
    forced = _refusals(project, "model.force_refused")
    assert len(forced) == 1 and forced[0].details["force_reason"] == "hotfix"
    assert forced[0].actor == "test-user"


def test_reveal_with_a_wrong_passphrase_is_a_denied_reveal(project: Any, tmp_path: Path) -> None:
    from bastion.data.protect import reveal_audited
    from bastion.errors import KeyManagementError

    def wrong_passphrase() -> Any:
        raise KeyManagementError("wrong passphrase for the key file")

    with pytest.raises(KeyManagementError):
        reveal_audited(project, tmp_path / "x.parquet", ["ssn"], keyring=wrong_passphrase, role="auditor")
    (denied,) = _refusals(project, "data.reveal.denied")
    assert denied.details["error"] == "KeyManagementError" and denied.details["role"] == "auditor"
    assert "wrong passphrase" not in str(denied.details)  # the error text could carry secrets; only its type


def test_label_arrival_is_audited_by_the_library(project: Any) -> None:
    import pandas as pd

    from bastion.monitor.performance import add_labels

    path, rows = add_labels(project, "churn", pd.DataFrame({"request_id": ["a", "b"], "label": [1, 0]}))
    (entry,) = project.audit.entries(action="monitor.labels_add")
    assert entry.details == {"rows": 2, "file": path.name} and rows == 2
    assert path.stat().st_mode & 0o777 == 0o600
