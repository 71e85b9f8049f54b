"""Alert sinks against real local receivers: an HTTP server and an SMTP server started by the test.

Each sink is checked for what the receiver gets, for retries with backoff, for giving up on a refusal,
and for the local alert log keeping the alert (pending) when the receiver is down.
"""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bastion.errors import ConfigError
from bastion.monitor import sinks as sinks_pkg
from bastion.monitor.alerts import Alert, deliver, pending_alerts, read_alert_log
from bastion.monitor.config import AlertsConfig, parse_monitoring_config
from bastion.monitor.sinks import AlertSink, Attempt, SinkConfig, build_sink, parse_sink_config

# ---------------------------------------------------------------------------- receivers


@dataclass
class HttpState:
    requests: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    calls: int = 0
    fail_first: int = 0
    status: int = 503


@pytest.fixture
def http() -> Iterator[tuple[str, HttpState]]:
    state = HttpState()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.calls += 1
            if state.calls <= state.fail_first:
                self.send_response(state.status)
            else:
                state.requests.append((self.path, body, dict(self.headers)))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


@dataclass
class SmtpState:
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    refuse_rcpt: bool = False
    busy_first: int = 0  # answer 421 (try later) to the first N connections
    connections: int = 0


class _SmtpHandler(socketserver.StreamRequestHandler):
    """A small SMTP receiver (RFC 5321 subset): enough for smtplib's send_message."""

    state: ClassVar[SmtpState]

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        st = self.state
        st.connections += 1
        if st.connections <= st.busy_first:
            self._say("421 try again later")
            return
        self._say("220 localhost test SMTP")
        sender, rcpts = "", []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            cmd = raw.decode().strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 localhost")
            elif verb == "MAIL":
                sender, rcpts = cmd.split(":", 1)[1].strip().strip("<>"), []
                self._say("250 ok")
            elif verb == "RCPT":
                if st.refuse_rcpt:
                    self._say("550 no such user")
                else:
                    rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                    self._say("250 ok")
            elif verb == "DATA":
                self._say("354 end with .")
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line)
                st.messages.append((sender, rcpts, email.message_from_bytes(b"".join(lines))))
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            elif verb in ("RSET", "NOOP"):
                self._say("250 ok")
            else:
                self._say("502 not implemented")


@pytest.fixture
def smtp() -> Iterator[tuple[int, SmtpState]]:
    state = SmtpState()
    handler = type("H", (_SmtpHandler,), {"state": state})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _alert(model: str = "churn:3") -> Alert:
    return Alert("data-drift", "data_drift", "critical", model, "Data drift in 2 feature(s): a, b",
                 "2026-01-01T00:00:00+00:00", "2026-01-01T01:00:00+00:00")


def _cfg(*sinks: dict[str, Any]) -> AlertsConfig:
    return AlertsConfig.model_validate({"sinks": list(sinks)})


# ---------------------------------------------------------------------------- each sink


def test_signed_webhook_sink(http: tuple[str, HttpState], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = http
    monkeypatch.setenv("HOOK_SECRET", "k3y")
    out = deliver([_alert()], _cfg({"type": "webhook", "url": url + "/hook", "secret_env": "HOOK_SECRET"}),
                  log_path=tmp_path / "a.jsonl", sleep=lambda s: None)
    assert [(d.destination, d.ok) for d in out] == [("log", True), ("webhook", True)]
    path, body, headers = state.requests[0]
    assert path == "/hook"
    assert headers["X-Bastion-Signature"] == "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert json.loads(body)["model"] == "churn:3"


def test_slack_sink(http: tuple[str, HttpState], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = http
    monkeypatch.setenv("SLACK_URL", url + "/services/T/B/x")
    cfg = _cfg({"type": "slack", "url_env": "SLACK_URL", "channel": "#ml-alerts"})
    out = deliver([_alert()], cfg, log_path=tmp_path / "a.jsonl", sleep=lambda s: None)
    assert out[1].destination == "slack" and out[1].ok
    path, body, _ = state.requests[0]
    payload = json.loads(body)
    assert path == "/services/T/B/x" and payload["channel"] == "#ml-alerts"
    assert "CRITICAL" in payload["text"] and "churn:3" in payload["text"] and "Data drift" in payload["text"]


def test_slack_sink_without_its_url_variable_sends_nothing(http: tuple[str, HttpState], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_URL", raising=False)
    out = deliver([_alert()], _cfg({"type": "slack", "url_env": "SLACK_URL"}), log_path=tmp_path / "a.jsonl")
    assert not out[1].ok and out[1].attempts == 0 and "SLACK_URL" in out[1].error
    assert http[1].calls == 0


def test_alertmanager_sink(http: tuple[str, HttpState], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = http
    monkeypatch.setenv("AM_TOKEN", "t0k")
    cfg = _cfg({"type": "alertmanager", "url": url + "/", "labels": {"team": "ml"}, "bearer_token_env": "AM_TOKEN"})
    a = _alert()
    out = deliver([a], cfg, log_path=tmp_path / "a.jsonl", sleep=lambda s: None)
    assert out[1].ok
    path, body, headers = state.requests[0]
    assert path == "/api/v2/alerts" and headers["Authorization"] == "Bearer t0k"
    [doc] = json.loads(body)
    assert doc["labels"] == {"team": "ml", "alertname": "data-drift", "severity": "critical", "model": "churn:3",
                             "signal": "data_drift", "source": "bastion"}
    assert doc["annotations"]["alert_id"] == a.id and doc["startsAt"] == a.created


def test_email_sink(smtp: tuple[int, SmtpState], tmp_path: Path) -> None:
    port, state = smtp
    cfg = _cfg({"type": "email", "host": "127.0.0.1", "port": port, "security": "none",
                "sender": "bastion@example.org", "to": ["oncall@example.org", "ml@example.org"]})
    out = deliver([_alert("churn\r\nBcc: x@evil.test:3")], cfg, log_path=tmp_path / "a.jsonl", sleep=lambda s: None)
    assert out[1].destination == "email" and out[1].ok, out[1]
    [(sender, rcpts, msg)] = state.messages
    assert sender == "bastion@example.org" and rcpts == ["oncall@example.org", "ml@example.org"]
    assert msg["Subject"].startswith("[bastion] CRITICAL churn") and msg["Bcc"] is None  # no header injection
    assert "Data drift in 2 feature(s)" in msg.get_payload()


def test_email_sink_retries_a_busy_server(smtp: tuple[int, SmtpState], tmp_path: Path) -> None:
    port, state = smtp
    state.busy_first = 2
    sleeps: list[float] = []
    cfg = _cfg({"type": "email", "host": "127.0.0.1", "port": port, "security": "none", "backoff": 0.25,
                "sender": "b@example.org", "to": ["o@example.org"]})
    out = deliver([_alert()], cfg, log_path=tmp_path / "a.jsonl", sleep=sleeps.append)
    assert out[1].ok and out[1].attempts == 3 and sleeps == [0.25, 0.5]
    assert len(state.messages) == 1


def test_email_refused_recipient_is_not_retried(smtp: tuple[int, SmtpState], tmp_path: Path) -> None:
    port, state = smtp
    state.refuse_rcpt = True
    cfg = _cfg({"type": "email", "host": "127.0.0.1", "port": port, "security": "none",
                "sender": "b@example.org", "to": ["nobody@example.org"]})
    out = deliver([_alert()], cfg, log_path=tmp_path / "a.jsonl", sleep=lambda s: None)
    assert not out[1].ok and out[1].attempts == 1 and "SMTPRecipientsRefused" in out[1].error
    assert pending_alerts(tmp_path / "a.jsonl")[0]["rule"] == "data-drift"


def test_file_sink_relative_to_root_and_private(tmp_path: Path) -> None:
    cfg = _cfg({"type": "file", "path": "out/alerts.jsonl"})
    a = _alert()
    out = deliver([a], cfg, log_path=tmp_path / "log.jsonl", root=tmp_path)
    assert out[1].ok and out[1].destination == "file"
    target = tmp_path / "out" / "alerts.jsonl"
    assert json.loads(target.read_text())["id"] == a.id
    assert (target.stat().st_mode & 0o777) == 0o600 and (target.parent.stat().st_mode & 0o777) == 0o700


# ---------------------------------------------------------------------------- receiver down, retries


def _down_cases(port: int) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}"
    return [
        {"type": "webhook", "url": url + "/hook", "secret_env": "HOOK_SECRET"},
        {"type": "slack", "url": url + "/slack"},
        {"type": "alertmanager", "url": url},
        {"type": "email", "host": "127.0.0.1", "port": port, "security": "none", "sender": "b@example.org",
         "to": ["o@example.org"]},
    ]


@pytest.mark.parametrize("case", range(4), ids=["webhook", "slack", "alertmanager", "email"])
def test_receiver_down_retries_then_keeps_the_alert(case: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "k3y")
    spec = {**_down_cases(_closed_port())[case], "retries": 2, "backoff": 0.5, "timeout": 2}
    log = tmp_path / "alerts.jsonl"
    sleeps: list[float] = []
    a = _alert()
    out = deliver([a], _cfg(spec), log_path=log, sleep=sleeps.append)
    assert not out[1].ok and out[1].attempts == 3 and sleeps == [0.5, 1.0]
    assert "Connection" in out[1].error or "refused" in out[1].error.lower()
    recs = read_alert_log(log)
    assert recs[0]["kind"] == "alert" and recs[0]["message"] == a.message
    assert recs[1]["kind"] == "delivery" and recs[1]["destination"] == spec["type"] and recs[1]["ok"] is False
    assert [p["id"] for p in pending_alerts(log)] == [a.id]


def test_server_errors_retry_then_succeed(http: tuple[str, HttpState], tmp_path: Path) -> None:
    url, state = http
    state.fail_first = 2
    out = deliver([_alert()], _cfg({"type": "alertmanager", "url": url}), log_path=tmp_path / "a.jsonl",
                  sleep=lambda s: None)
    assert out[1].ok and out[1].attempts == 3 and state.calls == 3


def test_one_sink_down_does_not_stop_the_others(http: tuple[str, HttpState], tmp_path: Path) -> None:
    url, state = http
    cfg = _cfg({"type": "slack", "name": "dead", "url": f"http://127.0.0.1:{_closed_port()}/x", "retries": 0},
               {"type": "slack", "name": "alive", "url": url + "/ok"})
    log = tmp_path / "a.jsonl"
    out = deliver([_alert()], cfg, log_path=log)
    assert [(d.destination, d.ok) for d in out] == [("log", True), ("dead", False), ("alive", True)]
    assert len(state.requests) == 1
    assert len(pending_alerts(log)) == 1  # "dead" has not taken it yet


# ---------------------------------------------------------------------------- config and plugins


@pytest.mark.parametrize(
    ("sink", "problem"),
    [
        ({"type": "pager"}, "unknown sink type 'pager'"),
        ({"type": "webhook", "url": "ftp://x"}, "must start with http"),
        ({"type": "slack"}, "exactly one of 'url' or 'url_env'"),
        ({"type": "email", "host": "h", "sender": "a@b", "to": []}, "to"),
        ({"type": "email", "host": "h", "sender": "a@b", "to": ["c@d"], "security": "none", "username": "u",
          "password_env": "P"}, "never sent in clear"),
        ({"type": "email", "host": "h", "sender": "a@b\r\nBcc: e@f", "to": ["c@d"]}, "not an e-mail address"),
        ({"type": "alertmanager", "url": "http://am", "extra": 1}, "extra"),
        ({"type": "file"}, "path"),
        ("file", "mapping with a 'type'"),
    ],
)
def test_bad_sink_config_is_refused(sink: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=r"alerts\.sinks") as e:
        parse_monitoring_config({"alerts": {"sinks": [sink]}})
    assert problem in str(e.value)


def test_duplicate_destinations_are_refused() -> None:
    with pytest.raises(ConfigError, match="distinct names"):
        parse_monitoring_config({"alerts": {"webhook": {"url": "http://a"}, "sinks": [{"type": "webhook",
                                                                                          "url": "http://b"}]}})


class _Recorder(AlertSink):
    type: ClassVar[str] = "recorder"
    seen: ClassVar[list[dict[str, Any]]] = []

    def send_once(self, alert: dict[str, Any]) -> Attempt:
        self.seen.append(alert)
        return Attempt(True)


class _Raises(AlertSink):
    type: ClassVar[str] = "raises"

    def send_once(self, alert: dict[str, Any]) -> Attempt:
        raise RuntimeError("plugin bug")


def test_third_party_sink_from_entry_point(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class EP:
        def __init__(self, name: str, obj: object) -> None:
            self.name, self._obj = name, obj

        def load(self) -> object:
            return self._obj

    eps = [EP("recorder", _Recorder), EP("raises", _Raises), EP("notasink", object)]
    monkeypatch.setattr(sinks_pkg, "entry_points", lambda group: eps if group == "bastion.alert_sinks" else [])
    sinks_pkg._plugins.cache_clear()
    try:
        cfg = _cfg({"type": "raises"}, {"type": "recorder", "retries": 0})
        out = deliver([_alert()], cfg, log_path=tmp_path / "a.jsonl")
        assert [(d.destination, d.ok) for d in out] == [("log", True), ("raises", False), ("recorder", True)]
        assert "RuntimeError" in out[1].error and _Recorder.seen[-1]["rule"] == "data-drift"
        with pytest.raises(ValueError, match="unknown sink type 'notasink'"):
            parse_sink_config({"type": "notasink"})
    finally:
        sinks_pkg._plugins.cache_clear()


def test_build_sink_refuses_an_unknown_type() -> None:
    with pytest.raises(ConfigError, match="Unknown alert sink type"):
        build_sink(SinkConfig(type="nope"))


def test_alert_log_is_private(tmp_path: Path) -> None:
    log = tmp_path / "mon" / "alerts.jsonl"
    deliver([_alert()], AlertsConfig(), log_path=log)
    assert (log.stat().st_mode & 0o777) == 0o600 and os.stat(log.parent).st_mode & 0o777 == 0o700
