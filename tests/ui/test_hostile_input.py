"""The dashboard's forms and query parameters with hostile values: open redirects after login, control and
CRLF characters, huge and negative numbers, HTML in stored names and free text, compressed or odd forms,
path traversal in download routes, and an endless request head on a real `bastion ui` server.

One project copy and one logged-in client per module (nothing here changes the project: every hostile
action is refused).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORDS, csrf_of, login

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


@pytest.fixture(scope="module")
def ui(ui_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The UI project plus stored text an attacker with write access to free-text fields controls."""
    import dataclasses

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from starlette.testclient import TestClient

    from bastion.project import Project, open_project
    from bastion.ui import create_ui_app

    root = tmp_path_factory.mktemp("ui-hostile") / "proj"
    shutil.copytree(ui_template, root)
    p = open_project(root)
    df = pd.DataFrame({"a": np.arange(40.0), "label": np.arange(40) % 2})
    dv = p.register_dataset(df, name="hostile", description=SCRIPT, tags={"note": IMG})
    hostile_actor = Project(dataclasses.replace(p.settings, user=SCRIPT))
    mv = hostile_actor.log_model(LogisticRegression().fit(df[["a"]], df["label"]), name="hostile",
                                 datasets=[dv.ref], description=SCRIPT, params={"C": IMG}, tags={"t": SCRIPT})
    hostile_actor.audited("test.hostile", SCRIPT, {"detail": IMG})
    hostile_actor.close()
    p.close()
    app = create_ui_app(root)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        csrf = login(client, "operator")
        yield {"client": client, "csrf": csrf, "app": app, "model": mv.ref, "dataset": dv.ref, "root": root}


@pytest.mark.parametrize(("nxt", "expected"), [
    ("/models/risk/1?tab=x", "/models/risk/1?tab=x"),  # a real page inside the dashboard: kept
    ("//evil.example/", "/"),
    ("/\\evil.example/", "/"),
    ("https://evil.example/", "/"),
    ("/\t/evil.example/", "/"),  # browsers drop a tab: //evil.example
    ("/\n/evil.example/", "/"),
    ("/ok\r\nSet-Cookie: pwned=1", "/"),
    ("/\x00", "/"),
    ("/\u202e/elpmaxe.live", "/"),  # right-to-left override
    ("/\u2028", "/"),
    ("/" + "a" * 5000, "/"),
    ("/%09/evil.example/", "/%09/evil.example/"),  # percent-encoded: a path segment, not an authority
], ids=["inside", "scheme-relative", "backslash", "absolute", "tab", "newline", "crlf-header", "nul", "rlo",
        "line-separator", "long", "encoded-tab"])
def test_next_after_login_stays_inside_the_dashboard(nxt: str, expected: str) -> None:
    from bastion.ui.app import _safe_next

    assert _safe_next(nxt) == expected


def test_login_form_redirects_only_inside(ui: dict[str, Any]) -> None:
    from starlette.testclient import TestClient

    with TestClient(ui["app"], base_url="http://127.0.0.1") as c:
        for nxt in ("/\t/evil.example/", "/ok\r\nSet-Cookie: pwned=1"):
            page = c.get("/login", params={"next": nxt})
            assert "evil.example" not in page.text and "pwned" not in page.text
            r = c.post("/login", data={"csrf": csrf_of(page.text), "username": "viewer",
                                       "password": PASSWORDS["viewer"], "next": nxt}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/"
            assert "pwned" not in str(r.headers)


PAGES = [
    "/?page=-1&sort=%00%0d%0a",
    "/audit?before=-5",
    "/audit?before=1e9",
    "/audit?before=" + "9" * 5000,
    "/audit?actor=%00%0d%0a%3Cscript%3Ealert(1)%3C/script%3E",
    "/audit?actor=" + "a" * 20000 + "&subject=%E2%80%AE",
    "/audit?verify=1&verify=2&action=%ff%fe",
    "/models/risk/-1",
    "/models/risk/0",
    "/models/risk/%EF%BC%91",  # a full-width digit
    "/models/%3Cscript%3E/1",
    "/models/risk/1?msg=%3Cscript%3Ealert(1)%3C/script%3E&sig=%00",
    "/models/risk/1/monitoring?x=" + "%ff" * 1000,
    "/models/risk/1/promote?alias=%3Cscript%3Ealert(1)%3C/script%3E",
    "/models/risk/1/promote?alias=%00%0d%0aX-Injected:%201",
    "/models/risk/1/promote?alias=" + "a" * 20000,
    "/models/risk/1/promote?alias=staging&alias=production",
    "/aliases/%3Cscript%3Ealert(1)%3C%2Fscript%3E/rollback?alias=%3Cb%3E",
    "/aliases/risk/rollback?alias=%0d%0aX-Injected:%201",
    "/datasets/people/-1",
    "/datasets/%2e%2e/1",
    "/datasets/people/99999999999999999999999",
]


@pytest.mark.parametrize("path", PAGES)
def test_hostile_query_and_path_values_are_never_a_500_and_render_escaped(ui: dict[str, Any], path: str) -> None:
    r = ui["client"].get(path, follow_redirects=False)
    assert r.status_code in (200, 400, 404), (r.status_code, r.text[:300])
    assert SCRIPT not in r.text and "<b>" not in r.text
    assert "x-injected" not in {k.lower() for k in r.headers}


@pytest.mark.parametrize("path", ["/", "/datasets", "/datasets/hostile/1", "/models/hostile/1", "/audit",
                                  "/models/hostile/1/monitoring"])
def test_stored_html_in_names_and_free_text_is_escaped(ui: dict[str, Any], path: str) -> None:
    r = ui["client"].get(path)
    assert r.status_code == 200, r.text[:300]
    assert SCRIPT not in r.text and "<img src=x" not in r.text
    if path in ("/models/hostile/1", "/audit"):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text  # shown, as text


def test_model_card_download_has_a_fixed_file_name_and_the_text_as_data(ui: dict[str, Any]) -> None:
    r = ui["client"].get("/models/hostile/1/card.md")
    assert r.status_code == 200 and SCRIPT in r.text  # the description, verbatim, in a text download
    assert r.headers["content-disposition"] == 'attachment; filename="hostile-1.md"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-type"].split(";")[0] == "text/markdown"


@pytest.mark.parametrize("path", [
    "/static/..%2f..%2fapp.py", "/static/%2e%2e/%2e%2e/app.py", "/static/..%5c..%5capp.py", "/static//etc/passwd",
    "/static/", "/static/%00", "/models/risk%0d%0aX-Injected:%201/1/bom.json", "/models/..%2f..%2f/1/card.md",
])
def test_traversal_and_crlf_in_download_routes(ui: dict[str, Any], path: str) -> None:
    r = ui["client"].get(path, follow_redirects=False)
    assert r.status_code in (400, 404), (r.status_code, r.text[:200])
    assert "x-injected" not in {k.lower() for k in r.headers}
    assert "import" not in r.text and "root:" not in r.text


@pytest.mark.parametrize(("alias", "extra"), [
    ("staging\r\nX-Injected: 1", {}),
    (IMG, {}),
    ("a\x00b", {}),
    ("a" * 15_000, {}),
    (IMG, {"reason": SCRIPT}),
], ids=["crlf", "html", "nul", "huge", "html-reason"])
def test_hostile_form_values_are_refused_and_escaped(ui: dict[str, Any], alias: str, extra: dict[str, str]) -> None:
    c = ui["client"]
    for path in ("/models/risk/1/promote", "/aliases/risk/rollback"):
        r = c.post(path, data={"csrf": ui["csrf"], "alias": alias, "confirm": "yes", **extra}, follow_redirects=False)
        assert r.status_code in (400, 404, 409, 413), (path, r.status_code, r.text[:300])
        assert "<img src=x" not in r.text and SCRIPT not in r.text
        assert "x-injected" not in {k.lower() for k in r.headers}


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({"content-type": "application/x-www-form-urlencoded", "content-encoding": "gzip"}, b"\x1f\x8b" + b"\0" * 20,
     415),
    ({"content-type": "multipart/form-data; boundary=x"}, b"--x--\r\n", 415),
    ({"content-type": "text/plain"}, b"csrf=x", 415),
    ({"content-type": "application/x-www-form-urlencoded"}, b"&".join(b"a%d=1" % i for i in range(100)), 400),
    ({"content-type": "application/x-www-form-urlencoded"}, b"a=" + b"b" * 20_000, 413),
], ids=["gzip", "multipart", "text-plain", "many-fields", "too-large"])
def test_odd_forms_are_refused_before_anything_else(ui: dict[str, Any], headers: dict[str, str], body: bytes,
                                                    status: int) -> None:
    r = ui["client"].post("/models/risk/1/promote", content=body, headers=headers, follow_redirects=False)
    assert r.status_code == status, r.text[:200]


def test_endless_request_head_on_a_real_dashboard_is_cut(ui: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """`bastion ui` runs behind the same connection guard as the server: a 400 KB header gets a 431."""
    import socket
    import threading
    import time

    import uvicorn

    from bastion.serve._conn import ENV_VAR, ConnectionLimits, uvicorn_connection_options

    monkeypatch.setenv(ENV_VAR, "")
    opts = uvicorn_connection_options(ConnectionLimits())
    server = uvicorn.Server(uvicorn.Config(ui["app"], port=0, log_level="critical", **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            try:
                s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 400_000 + b"\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert s.recv(64).startswith(b"HTTP/1.1 431")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_trickled_login_form_is_cut_by_the_form_timeout(ui: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Slow-loris body: a POST whose form arrives a byte at a time gets a 408 and a closed connection when the
    form timeout passes (the header timeout no longer applies once the head is in), and the page still answers."""
    import socket
    import threading
    import time

    import uvicorn

    from bastion.serve._conn import ENV_VAR, ConnectionLimits, uvicorn_connection_options
    from bastion.ui import app as ui_app_module

    monkeypatch.setattr(ui_app_module, "_FORM_TIMEOUT_S", 1.0)
    monkeypatch.setenv(ENV_VAR, "")
    opts = uvicorn_connection_options(ConnectionLimits(header_timeout_s=30))
    server = uvicorn.Server(uvicorn.Config(ui["app"], port=0, log_level="critical", **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 1000\r\n\r\n")
            s.settimeout(0.2)
            t0, got = time.monotonic(), b""
            while time.monotonic() - t0 < 6:
                try:
                    s.sendall(b"a")
                    chunk = s.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                got += chunk
            took = time.monotonic() - t0
        assert got.startswith(b"HTTP/1.1 408") and 1.0 <= took < 4, (got[:100], took)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(30)
