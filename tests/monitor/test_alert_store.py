"""The alert log in the shared database: alerts raised in one folder are listed from another folder on the
same database, with every sink's delivery outcome; the local JSON-lines copy stays an option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.monitor.alerts import Alert, deliver, stored_alerts, stored_pending_alerts
from bastion.monitor.config import AlertsConfig


def _alert(model: str = "churn:3", rule: str = "data-drift") -> Alert:
    return Alert(rule, "data_drift", "warning", model, f"drift in {model}")


def _cfg(*sinks: dict[str, Any]) -> AlertsConfig:
    return AlertsConfig.model_validate({"sinks": list(sinks)})


def test_alerts_raised_in_b_are_listed_from_a(two_folders: Any, tmp_path: Path) -> None:
    a, b = two_folders
    first, other = _alert(), _alert("fraud:1", "anomalies")
    out = deliver([first, other], _cfg({"type": "file", "path": "sink.jsonl"}), db=b.db, root=b.root)
    assert [(d.destination, d.ok) for d in out] == [("log", True), ("file", True)] * 2
    recs = stored_alerts(a.db)
    assert [r["kind"] for r in recs] == ["alert", "delivery", "alert", "delivery"]
    assert recs[0]["id"] == first.id and recs[1]["alert_id"] == first.id and recs[1]["ok"] is True
    assert [r["id"] for r in stored_alerts(a.db, model="churn", kind="alert")] == [first.id]
    assert [r["id"] for r in stored_alerts(a.db, model="churn:3", kind="alert")] == [first.id]
    assert stored_alerts(a.db, model="chur", kind="alert") == []  # a name prefix is not a model
    assert [r["id"] for r in stored_alerts(a.db, kind="alert", limit=1)] == [other.id]
    assert stored_pending_alerts(a.db) == []
    # nothing local by default: the file sink wrote where it was told, no alerts.jsonl appeared
    assert (b.root / "sink.jsonl").is_file()
    assert not list(b.home.rglob("alerts.jsonl")) and not list(a.home.rglob("alerts.jsonl"))


def test_a_failed_sink_is_pending_for_every_machine(two_folders: Any, tmp_path: Path) -> None:
    a, b = two_folders
    local = tmp_path / "copy" / "alerts.jsonl"
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("x")  # a file where the sink wants a folder: the sink fails
    al = _alert()
    out = deliver([al], _cfg({"type": "file", "path": str(blocked / "x.jsonl"), "name": "archive"}), db=b.db,
                  log_path=local, sleep=lambda s: None)
    assert [(d.destination, d.ok) for d in out] == [("log", True), ("archive", False)]
    assert [r["id"] for r in stored_pending_alerts(a.db)] == [al.id]
    # the optional local copy holds the same records
    lines = [json.loads(x) for x in local.read_text().splitlines()]
    assert [r["kind"] for r in lines] == ["alert", "delivery"] and lines[0]["id"] == al.id


def test_deliver_needs_a_log() -> None:
    with pytest.raises(ValueError, match="needs an alert log"):
        deliver([_alert()], _cfg())


def test_cli_lists_the_shared_log(two_folders: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.cli.main import app

    a, b = two_folders
    deliver([_alert(model="churn:3"), _alert(model="x:1", rule="[bold]markup[/bold]")], _cfg(), db=b.db)
    monkeypatch.chdir(a.root)
    r = CliRunner().invoke(app, ["monitor", "alerts", "--json"])
    assert r.exit_code == 0, r.output
    assert [x["model"] for x in json.loads(r.stdout)] == ["churn:3", "x:1"]
    r = CliRunner().invoke(app, ["monitor", "alerts", "--model", "churn"])
    assert r.exit_code == 0 and "churn:3" in r.output and "x:1" not in r.output
    r = CliRunner().invoke(app, ["monitor", "alerts", "--model", "x"])
    assert "[bold]markup[/bold]" in r.output  # shown as text, never read as markup
    r = CliRunner().invoke(app, ["monitor", "alerts", "--pending"])
    assert r.exit_code == 0 and "No alerts." in r.output
