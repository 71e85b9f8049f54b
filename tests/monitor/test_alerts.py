"""Alert delivery: local log first, HMAC-signed webhook with retries and backoff, nothing lost when
the receiver is down; rules from the config; rollback audited."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from bastion.monitor.alerts import (
    SIGNATURE_HEADER,
    Alert,
    deliver,
    evaluate_alerts,
    maybe_rollback,
    pending_alerts,
    read_alert_log,
    sign_body,
)
from bastion.monitor.config import AlertsConfig, RollbackConfig

SECRET = "s3cret-for-tests"


class _Receiver:
    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.bodies: list[tuple[bytes, dict[str, str]]] = []
        self.calls = 0
        self.fail_first, self.status = fail_first, status


@pytest.fixture
def receiver() -> Iterator[tuple[str, _Receiver]]:
    state = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.calls += 1
            if state.calls <= state.fail_first:
                self.send_response(state.status)
            else:
                state.bodies.append((body, dict(self.headers)))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", state
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _alert() -> Alert:
    return Alert("data-drift", "data_drift", "critical", "churn:3", "Data drift in 2 feature(s): a, b")


def _cfg(url: str, **kw: Any) -> AlertsConfig:
    return AlertsConfig.model_validate({"webhook": {"url": url, "retries": 3, "backoff": 0.5, **kw}})


def test_signed_webhook_delivery(
    receiver: tuple[str, _Receiver], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = receiver
    monkeypatch.setenv("BASTION_WEBHOOK_SECRET", SECRET)
    out = deliver([_alert()], _cfg(url), log_path=tmp_path / "alerts.jsonl", sleep=lambda s: None)
    assert [d.destination for d in out] == ["log", "webhook"] and out[1].ok and out[1].attempts == 1
    body, headers = state.bodies[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected == sign_body(body, SECRET.encode())
    doc = json.loads(body)
    assert doc["rule"] == "data-drift" and doc["schema_version"] == 1
    assert pending_alerts(tmp_path / "alerts.jsonl") == []


def test_retries_with_backoff_then_success(receiver: tuple[str, _Receiver], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = receiver
    state.fail_first = 2
    monkeypatch.setenv("BASTION_WEBHOOK_SECRET", SECRET)
    sleeps: list[float] = []
    out = deliver([_alert()], _cfg(url), log_path=tmp_path / "a.jsonl", sleep=sleeps.append)
    assert out[1].ok and out[1].attempts == 3
    assert sleeps == [0.5, 1.0]  # exponential backoff


def test_receiver_down_keeps_the_alert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_WEBHOOK_SECRET", SECRET)
    sleeps: list[float] = []
    cfg = _cfg(f"http://127.0.0.1:{_closed_port()}/hook", timeout=2)
    log = tmp_path / "alerts.jsonl"
    a = _alert()
    out = deliver([a], cfg, log_path=log, sleep=sleeps.append)
    assert not out[1].ok and out[1].attempts == 4 and "Connection" in out[1].error
    assert sleeps == [0.5, 1.0, 2.0]
    recs = read_alert_log(log)
    assert recs[0]["id"] == a.id and recs[0]["message"] == a.message
    assert recs[1]["kind"] == "delivery" and recs[1]["ok"] is False
    assert [p["id"] for p in pending_alerts(log)] == [a.id]


def test_client_errors_are_not_retried(receiver: tuple[str, _Receiver], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = receiver
    state.fail_first, state.status = 10, 401
    monkeypatch.setenv("BASTION_WEBHOOK_SECRET", SECRET)
    out = deliver([_alert()], _cfg(url), log_path=tmp_path / "a.jsonl", sleep=lambda s: None)
    assert not out[1].ok and out[1].attempts == 1 and out[1].error == "HTTP 401"


def test_no_secret_means_no_unsigned_send(receiver: tuple[str, _Receiver], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = receiver
    monkeypatch.delenv("BASTION_WEBHOOK_SECRET", raising=False)
    out = deliver([_alert()], _cfg(url), log_path=tmp_path / "a.jsonl", sleep=lambda s: None)
    assert not out[1].ok and "refusing to send unsigned" in out[1].error
    assert state.calls == 0
    assert len(pending_alerts(tmp_path / "a.jsonl")) == 1


@pytest.mark.parametrize(
    ("result", "signals"),
    [
        ({"drift": {"dataset_drift": True, "drifted_features": ["a"], "features": []}}, ["data_drift"]),
        ({"drift": {"dataset_drift": False, "prediction_drift": True,
                    "features": [{"column": "out.proba", "prediction": True, "drifted": True}]}}, ["prediction_drift"]),
        ({"drift": {}, "anomaly": {"exceeded": True, "share": 0.2, "max_share": 0.05}}, ["anomaly"]),
        ({"drift": {}, "attacks": [{"subject": "key:k", "message": "m"}]}, ["attack"]),
        ({"drift": {}, "performance": [{"breaches": [{"metric": "accuracy", "value": 0.5, "floor": 0.8}]}]},
         ["performance"]),
        ({"drift": {"dataset_drift": False, "features": []}}, []),
    ],
)
def test_rules(result: dict[str, Any], signals: list[str]) -> None:
    alerts = evaluate_alerts(result, AlertsConfig(), model="m:1")
    assert [a.signal for a in alerts] == signals


def test_rollback_only_when_configured_and_audited(project: Any) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    df = pd.DataFrame({"a": np.arange(20.0), "y": [0, 1] * 10})
    m = LogisticRegression().fit(df[["a"]], df["y"])
    v1 = project.log_model(m, name="clf")
    v2 = project.log_model(m, name="clf")
    project.promote(v1.ref, alias="production", force_reason="test")
    project.promote(v2.ref, alias="production", force_reason="test")
    a = _alert()
    assert maybe_rollback(project, "clf", [a], RollbackConfig()) is None  # disabled by default
    warn = Alert("x", "data_drift", "warning", "clf:2", "minor")
    assert maybe_rollback(project, "clf", [warn], RollbackConfig(enabled=True)) is None  # below min severity
    done = maybe_rollback(project, "clf", [a], RollbackConfig(enabled=True))
    assert done is not None and done["to_version"] == 1
    assert project.get_model("clf@production").version == 1
    [entry] = project.audit.entries(action="monitor.rollback")
    assert entry.subject == "clf@production" and entry.details["rules"] == ["data-drift"]


def test_a_later_window_does_not_roll_back_twice(project: Any) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    df = pd.DataFrame({"a": np.arange(20.0), "y": [0, 1] * 10})
    m = LogisticRegression().fit(df[["a"]], df["y"])
    for _ in range(3):
        project.log_model(m, name="clf")
    for v in (1, 2, 3):
        project.promote(f"clf:{v}", alias="production")
    cfg = RollbackConfig(enabled=True)
    first = maybe_rollback(project, "clf", [_alert()], cfg, monitored_version=3)
    assert first is not None and first["to_version"] == 2
    again = maybe_rollback(project, "clf", [_alert()], cfg, monitored_version=3)  # same traffic, next window
    assert again is not None and again["skipped"] is True
    assert project.get_model("clf@production").version == 2
    assert len(project.audit.entries(action="monitor.rollback")) == 1
