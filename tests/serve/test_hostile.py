"""The model server under hostile traffic, on a real uvicorn on a loopback port (issue 15's findings).

One server per module (the sample model, every layer on, the connection guard with a 1 s header timeout);
each test is one attack, and each asserts what a legitimate caller still gets.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import bearer, good_row, make_config

HEADER_TIMEOUT = 1.0


class _Server:
    def __init__(self, app: Any, opts: dict[str, Any]) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, **opts))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - t0
    finally:
        conn.close()


@pytest.fixture(scope="module")
def live(sample_template: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import shutil
    from dataclasses import replace

    from bastion.project import open_project
    from bastion.serve import create_app
    from bastion.serve._conn import ENV_VAR, ConnectionLimits
    from bastion.serve.auth import create_api_key
    from bastion.serve.runner import uvicorn_options

    root = tmp_path_factory.mktemp("hostile") / "proj"
    shutil.copytree(sample_template.root, root)
    sample = replace(sample_template, root=root)
    project = open_project(root)
    key = create_api_key(project, "k-hostile", ["predict"]).key
    config = make_config(sample, connections=ConnectionLimits(header_timeout_s=HEADER_TIMEOUT),
                         limits=__import__("bastion.serve", fromlist=["LimitSettings"]).LimitSettings(
                             rate=0, concurrency=64))
    opts = uvicorn_options(config)
    opts.update(port=0, log_level="warning")
    app = create_app(config, project=project)
    try:
        with _Server(app, opts) as srv:
            yield {"port": srv.port, "key": key, "sample": sample, "server": srv}
    finally:
        import os

        os.environ.pop(ENV_VAR, None)


def _predict_body(sample: Any) -> bytes:
    return json.dumps({"instances": [good_row(sample)]}).encode()


def test_idle_connection_flood_leaves_healthz_and_keyed_requests_answerable(live: dict[str, Any]) -> None:
    """2,100 idle sockets from one address (the finding: uvicorn's cap then answered 503 to everyone)."""
    from bastion.serve._conn import raise_fd_limit

    assert raise_fd_limit(2100 + 512) >= 2100 + 256
    port = live["port"]
    idle: list[socket.socket] = []
    try:
        for _ in range(2100):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            idle.append(s)
        status, _, took = _request(port, "GET", "/healthz", timeout=2)
        assert status == 200 and took < 2.0
        status, body, took = _request(port, "POST", f"/v1/models/{live['sample'].name}:predict",
                                      _predict_body(live["sample"]), bearer(live["key"]), timeout=2)
        assert status == 200, body
        assert took < 2.0
        # the per-client cap evicted the oldest idle sockets (the server closed them: EOF on read)
        idle[0].settimeout(2)
        assert idle[0].recv(1) == b""
    finally:
        for s in idle:
            s.close()


def test_slow_request_head_is_closed_after_the_header_timeout(live: dict[str, Any]) -> None:
    """Slowloris: a request head dribbled out never completes; the server hangs up, the caller is unaffected."""
    s = socket.create_connection(("127.0.0.1", live["port"]), timeout=10)
    try:
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        while time.monotonic() - t0 < HEADER_TIMEOUT + 3:
            time.sleep(0.3)
            try:
                s.sendall(b"X-a: b\r\n")
            except OSError:
                closed = True
                break
            s.settimeout(0.01)
            with contextlib.suppress(TimeoutError, BlockingIOError):
                if s.recv(1) == b"":
                    closed = True
                    break
        assert closed, "the server kept a connection whose request head never completed"
        assert time.monotonic() - t0 < HEADER_TIMEOUT + 3
    finally:
        s.close()
    assert _request(live["port"], "GET", "/healthz")[0] == 200


def test_keep_alive_connection_must_send_its_next_head_in_time(live: dict[str, Any]) -> None:
    """After a response, a connection that starts a new head and stalls is closed too."""
    s = socket.create_connection(("127.0.0.1", live["port"]), timeout=10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /healthz HTTP/1.1\r\n")  # keeps uvicorn's keep-alive timer from firing
        s.settimeout(HEADER_TIMEOUT + 3)
        assert s.recv(65536) == b""
    finally:
        s.close()


def test_many_key_bodies_do_not_hold_the_event_loop(live: dict[str, Any]) -> None:
    """4 callers with a valid key send just-under-1 MiB bodies of ~75k unknown keys in a loop; /healthz
    stays fast (the finding: 333-455 ms median) and the bodies are refused, not validated key by key."""
    port, name = live["port"], live["sample"].name
    body = ("{\"instances\":[{" + ",".join(f'"k{i}":1' for i in range(75_000)) + "}]}").encode()
    assert 700_000 < len(body) < 1_048_576
    stop = threading.Event()
    statuses: list[int] = []

    def attack() -> None:
        while not stop.is_set():
            statuses.append(_request(port, "POST", f"/v1/models/{name}:predict", body, bearer(live["key"]))[0])

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        lat = []
        for _ in range(40):
            status, _, took = _request(port, "GET", "/healthz")
            assert status == 200
            lat.append(took)
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert statuses and set(statuses) == {413}
    assert statistics.median(lat) < 0.1, f"healthz median {statistics.median(lat) * 1000:.1f} ms under attack"


@pytest.mark.parametrize(("allow", "seen"), [((), "127.0.0.1"), (("127.0.0.1",), "6.6.6.6"),
                                             (("10.0.0.0/8",), "127.0.0.1")])
def test_forwarded_for_is_believed_only_from_named_proxies(allow: tuple[str, ...], seen: str) -> None:
    """The server and the dashboard take uvicorn's proxy settings from forwarded_options: by default a
    forged X-Forwarded-For from a loopback forwarder (ssh -L, stunnel, a sidecar) chooses nothing."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from bastion.serve.runner import forwarded_options

    async def who(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.client.host if request.client else "")

    app = Starlette(routes=[Route("/who", who)])
    with _Server(app, {"port": 0, "log_level": "warning", **forwarded_options(allow)}) as srv:
        status, body, _ = _request(srv.port, "GET", "/who", headers={"X-Forwarded-For": "6.6.6.6"})
    assert status == 200 and body.decode() == seen


@pytest.mark.parametrize("bad", ["*", "localhost", "1.2.3.4/99", "1.2.3.4;5.6.7.8"])
def test_forwarded_allow_ips_must_be_addresses(bad: str) -> None:
    from bastion.errors import ConfigError
    from bastion.serve.config import check_forwarded_allow_ips

    with pytest.raises(ConfigError, match="forwarded-allow-ips"):
        check_forwarded_allow_ips(bad)
    assert check_forwarded_allow_ips("10.0.0.1, 192.168.0.0/16") == ("10.0.0.1", "192.168.0.0/16")


def test_trailing_slash_does_not_redirect_to_the_host_header(live: dict[str, Any]) -> None:
    status, _, _ = _request(live["port"], "GET", "/healthz/", headers={"Host": "evil.example"})
    assert status == 404


def test_mounted_dashboard_redirect_is_relative(sample: Any, project: Any) -> None:
    from starlette.testclient import TestClient

    from bastion.serve import create_app

    app = create_app(make_config(sample, ui=True, prediction_log=False), project=project)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.get("/ui", headers={"Host": "evil.example"}, follow_redirects=False)
        assert r.status_code == 308 and r.headers["location"] == "/ui/"
        assert c.get("/ui/login").status_code == 200
        assert c.get("/v1/admin/status/", headers={"Host": "evil.example"}, follow_redirects=False).status_code == 404


def test_idle_flood_evicts_fresh_sockets_before_a_clients_keep_alive_connection(live: dict[str, Any]) -> None:
    """A client between two requests on its keep-alive connection is not the flood's victim: sockets that
    never sent a request go first (the per-address cap is 256)."""
    port = live["port"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle: list[socket.socket] = []
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() and True
        for _ in range(600):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        conn.request("POST", f"/v1/models/{live['sample'].name}:predict", body=_predict_body(live["sample"]),
                     headers={"Content-Type": "application/json", **bearer(live["key"])})
        resp = conn.getresponse()  # the same connection: raises if the server had closed it
        assert resp.status == 200, resp.read()
        resp.read()
    finally:
        conn.close()
        for s in idle:
            s.close()
