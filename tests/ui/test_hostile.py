"""The dashboard against the smaller findings of issue 15: huge numbers in the address, forged banners,
Host-reflecting redirects."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import login


@pytest.mark.parametrize("path", [
    "/audit?before=99999999999999999999999999",  # beyond SQLite's 64-bit integers: was a 500
    "/audit?before=" + "9" * 5000,  # beyond Python's int() digit limit
    "/audit?before=%C2%B2",  # '²'.isdigit() is True, int('²') raises
    "/audit?before=-1",
    "/models/risk/99999999999999999999999999",
    "/models/risk/" + "9" * 5000,
    "/models/risk/%C2%B2",
    "/models/risk/99999999999999999999999999/monitoring",
    "/models/risk/99999999999999999999999999/promote?alias=staging",
])
def test_huge_or_odd_numbers_in_the_address_are_not_a_500(client: Any, path: str) -> None:
    login(client, "operator")
    r = client.get(path, follow_redirects=False)
    assert r.status_code in (200, 404), (r.status_code, r.text[:200])


def test_msg_banner_shows_only_what_the_dashboard_itself_said(client: Any) -> None:
    csrf = login(client, "operator")
    forged = client.get("/models/risk/1?msg=Security+notice:+call++1-555-0100+to+verify+your+account")
    assert forged.status_code == 200 and "555-0100" not in forged.text
    r = client.post("/aliases/risk/rollback", data={"csrf": csrf, "alias": "staging", "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303
    target = r.headers["location"]
    page = client.get(target)
    assert 'id="flash"' in page.text and "Rolled staging back to risk:1." in page.text
    # the same link with another text keeps its signature but not its banner
    q = parse_qs(urlsplit(target).query)
    tampered = client.get(f"/models/risk/1?msg=Pay+here&sig={q['sig'][0]}")
    assert "Pay here" not in tampered.text and 'id="flash"' not in tampered.text
    # another session (another CSRF secret) does not see the first session's banner either
    client.cookies.clear()
    login(client, "viewer")
    assert 'id="flash"' not in client.get(target).text


@pytest.mark.parametrize("path", ["/audit/", "/datasets/", "/models/risk/1/"])
def test_trailing_slash_never_redirects_to_the_host_header(client: Any, path: str) -> None:
    login(client, "viewer")
    r = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
    assert "evil.example" not in r.headers.get("location", "")
    assert r.status_code == 404



def test_audit_head_compaction_from_many_threads(ui_app: Any) -> None:
    """A login flood audits from the dashboard's thread pool; compactions of the head log raced on one
    temp-file name per process (one thread renamed the other's file away: a 500)."""
    import threading

    p = ui_app.state.project
    p.audited("test.entry", "x", {})
    errors: list[BaseException] = []

    def compact() -> None:
        try:
            for _ in range(40):
                p.audit._compact_head()
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=compact) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert p.audit.read_head()["seq"] >= 0
    assert not list(p.audit.head_path.parent.glob(p.audit.head_path.name + ".*.tmp"))


def test_bastion_ui_runs_with_the_connection_guard_and_no_forwarded_trust(
        ui_root: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bastion ui` had no connection cap at all; it now runs uvicorn with the server's guard."""
    import uvicorn
    from typer.testing import CliRunner

    from bastion.cli.main import app
    from bastion.serve._conn import ENV_VAR

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda web, **kw: seen.update(kw))
    monkeypatch.delenv(ENV_VAR, raising=False)
    r = CliRunner().invoke(app, ["ui", "--project", str(ui_root), "--port", "0"])
    assert r.exit_code == 0, r.output
    assert seen["http"].startswith("bastion.serve._conn:Guarded") and seen["limit_concurrency"] is None
    assert seen["proxy_headers"] is False and seen["timeout_keep_alive"] <= 5
    r = CliRunner().invoke(app, ["ui", "--project", str(ui_root), "--forwarded-allow-ips", "*"])
    from bastion.errors import ConfigError

    assert isinstance(r.exception, ConfigError) and r.exception.exit_code == 2  # main() maps it: exit 2
    assert "forwarded-allow-ips" in str(r.exception)
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_dashboard_answers_new_visitors_during_an_idle_flood(ui_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The finding: 1,100 idle connections reset every new dashboard connection (1,024 descriptors)."""
    import http.client
    import socket
    import threading
    import time

    import uvicorn

    from bastion.serve._conn import ENV_VAR, ConnectionLimits, raise_fd_limit, uvicorn_connection_options

    monkeypatch.setenv(ENV_VAR, "")
    opts = uvicorn_connection_options(ConnectionLimits())
    assert raise_fd_limit(4096) >= 2300
    server = uvicorn.Server(uvicorn.Config(ui_app, port=0, log_level="warning", **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    idle: list[socket.socket] = []
    try:
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/login")
        resp = conn.getresponse()
        assert resp.status == 200 and b"csrf" in resp.read()
        assert time.perf_counter() - t0 < 2.0
        conn.close()
    finally:
        for s in idle:
            s.close()
        server.should_exit = True
        thread.join(30)
