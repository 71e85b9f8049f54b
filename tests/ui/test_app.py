"""The dashboard over HTTP: login, roles, CSRF, security headers, pages, static files."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .conftest import PASSWORDS, csrf_of, login

PAGES = [
    "/",
    "/models/risk/1",
    "/models/risk/2",
    "/models/risk/2/monitoring",
    "/datasets",
    "/datasets/people/1",
    "/audit",
    "/aliases/risk/rollback?alias=staging",
    "/models/risk/2/promote?alias=staging",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_redirect_to_login_without_a_session(client: Any, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/models/risk/1/promote", {"alias": "staging", "confirm": "yes"}),
        ("/aliases/risk/rollback", {"alias": "staging", "confirm": "yes"}),
        ("/logout", {}),
    ],
)
def test_actions_without_a_session_are_401(client: Any, path: str, form: dict[str, str]) -> None:
    r = client.post(path, data={"csrf": "x", **form}, follow_redirects=False)
    assert r.status_code == 401


def test_login_page_and_successful_login(client: Any) -> None:
    csrf = login(client, "viewer")
    page = client.get("/")
    assert page.status_code == 200
    assert 'data-model="risk"' in page.text
    assert csrf and csrf in page.text
    cookie = page.request.headers.get("cookie", "")
    assert "bastion_session=" in cookie


@pytest.mark.parametrize(
    ("user", "password"),
    [("viewer", "wrong-password"), ("nobody", "whatever-pass"), ("viewer", "")],
)
def test_bad_logins_are_refused_and_audited(client: Any, ui_app: Any, user: str, password: str) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": user, "password": password})
    assert r.status_code == 401
    assert "Unknown user or wrong password." in r.text
    assert client.get("/", follow_redirects=False).status_code == 303
    assert ui_app.state.project.audit.entries(action="ui.login.failed", limit=1)[0].subject == f"user:{user}"


def test_session_cookie_flags(client: Any) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": "viewer",
                                    "password": PASSWORDS["viewer"]}, follow_redirects=False)
    set_cookie = r.headers["set-cookie"].lower()
    assert "bastion_session=" in set_cookie
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert "secure" not in set_cookie.replace("bastion_session", "")  # plain HTTP here


def test_secure_cookie_over_https(ui_root: Any) -> None:
    from starlette.testclient import TestClient

    from bastion.ui import create_ui_app

    with TestClient(create_ui_app(ui_root), base_url="https://127.0.0.1") as c:
        page = c.get("/login")
        r = c.post("/login", data={"csrf": csrf_of(page.text), "username": "viewer",
                                   "password": PASSWORDS["viewer"]}, follow_redirects=False)
    assert "; secure" in r.headers["set-cookie"].lower()
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_login_without_csrf_is_refused(client: Any) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": "viewer", "password": PASSWORDS["viewer"]})
    assert r.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_rate_limit(ui_root: Any) -> None:
    from starlette.testclient import TestClient

    from bastion.ui import create_ui_app

    with TestClient(create_ui_app(ui_root, login_limit=2), base_url="http://127.0.0.1") as c:
        codes = []
        for _ in range(3):
            page = c.get("/login")
            codes.append(c.post("/login", data={"csrf": csrf_of(page.text), "username": "viewer",
                                                "password": "wrong-password"}).status_code)
        page = c.get("/login")
        ok = c.post("/login", data={"csrf": csrf_of(page.text), "username": "viewer",
                                    "password": PASSWORDS["viewer"]}, follow_redirects=False)
    assert codes == [401, 401, 429]
    assert ok.status_code == 429  # even the right password waits out the window


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_login_next_is_never_an_open_redirect(client: Any, target: str) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": "viewer",
                                    "password": PASSWORDS["viewer"], "next": target}, follow_redirects=False)
    assert r.headers["location"] == "/"


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/models/risk/1/promote", {"alias": "staging", "confirm": "yes"}),
        ("/aliases/risk/rollback", {"alias": "staging", "confirm": "yes"}),
    ],
)
def test_viewer_is_refused_actions_server_side(client: Any, ui_app: Any, path: str, form: dict[str, str]) -> None:
    csrf = login(client, "viewer")
    before = ui_app.state.project.get_model("risk@staging").version
    r = client.post(path, data={"csrf": csrf, **form}, follow_redirects=False)
    assert r.status_code == 403
    assert "operator role" in r.text
    assert ui_app.state.project.get_model("risk@staging").version == before
    page = client.get("/models/risk/2")
    assert 'id="actions"' not in page.text
    assert client.get("/models/risk/2/promote?alias=staging").status_code == 403


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_action_without_the_session_csrf_is_refused(client: Any, ui_app: Any, csrf: str | None) -> None:
    login(client, "operator")
    form = {"alias": "staging", "confirm": "yes"}
    if csrf is not None:
        form["csrf"] = csrf
    r = client.post("/aliases/risk/rollback", data=form, follow_redirects=False)
    assert r.status_code == 403
    assert "CSRF" in r.text
    assert ui_app.state.project.get_model("risk@staging").version == 2


def test_action_refuses_non_form_bodies(client: Any) -> None:
    csrf = login(client, "operator")
    r = client.post("/aliases/risk/rollback", json={"csrf": csrf, "alias": "staging", "confirm": "yes"})
    assert r.status_code == 415


def test_operator_rollback_and_promote_are_audited(client: Any, ui_app: Any) -> None:
    csrf = login(client, "operator")
    page = client.get("/aliases/risk/rollback?alias=staging")
    assert "it will point at v1 again" in page.text
    r = client.post("/aliases/risk/rollback", data={"csrf": csrf, "alias": "staging", "confirm": "yes",
                                                     "reason": "bad drift"}, follow_redirects=False)
    assert r.status_code == 303
    p = ui_app.state.project
    assert p.get_model("risk@staging").version == 1
    entry = p.audit.entries(action="model.rollback", limit=1)[0]
    assert (entry.actor, entry.details["reason"]) == ("operator", "bad drift")
    confirm = client.get("/models/risk/2/promote?alias=staging")
    assert "The promotion rules allow this." in confirm.text
    r = client.post("/models/risk/2/promote", data={"csrf": csrf, "alias": "staging", "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert p.get_model("risk@staging").version == 2
    assert p.audit.entries(action="model.promote", limit=1)[0].actor == "operator"


def test_promotion_refused_by_the_rules_shows_why(client: Any, ui_app: Any) -> None:
    csrf = login(client, "operator")
    page = client.get("/models/risk/2/promote?alias=production")
    assert "The promotion rules refuse this" in page.text
    assert "no gate attestation" in page.text
    assert 'id="confirm"' not in page.text
    r = client.post("/models/risk/2/promote", data={"csrf": csrf, "alias": "production", "confirm": "yes"})
    assert r.status_code == 409  # the server re-checks: a hand-made POST is refused too
    assert "refused" in r.text
    assert ui_app.state.project.audit.entries(action="model.promote", subject="risk:2", limit=5)[0].details[
        "alias"] == "staging"


def test_unconfirmed_actions_do_nothing(client: Any, ui_app: Any) -> None:
    csrf = login(client, "operator")
    r = client.post("/aliases/risk/rollback", data={"csrf": csrf, "alias": "staging"})
    assert r.status_code == 400
    assert ui_app.state.project.get_model("risk@staging").version == 2


def test_logout_invalidates_the_session(client: Any) -> None:
    csrf = login(client, "viewer")
    cookie = client.cookies.get("bastion_session")
    r = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set("bastion_session", cookie)  # a copied cookie is dead after logout too
    assert client.get("/", follow_redirects=False).status_code == 303


def test_forged_session_cookie_is_ignored(client: Any) -> None:
    login(client, "viewer")
    value = client.cookies.get("bastion_session")
    for forged in (value[:-2] + ("AA" if not value.endswith("AA") else "BB"), "x" * 43, "", "a" * 5000,
                   value + "."):
        client.cookies.set("bastion_session", forged)
        assert client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("path", ["/login", *PAGES, "/static/app.css", "/static/nope.css"])
def test_security_headers_on_every_response(client: Any, path: str) -> None:
    if path != "/login":
        login(client, "operator")
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


_URL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.mark.parametrize("path", ["/login", *PAGES])
def test_no_external_urls_and_no_inline_scripts(client: Any, path: str) -> None:
    if path != "/login":
        login(client, "operator")
    html = client.get(path).text
    assert not _URL.search(html), _URL.search(html)
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="/static/' in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "inline event handler"


def test_pages_show_what_they_should(client: Any) -> None:
    login(client, "operator")
    inv = client.get("/").text
    assert "staging → v2" in inv and 'dot-amber' in inv and "amber <small>(v2)" in inv and "data-drift" in inv
    ver = client.get("/models/risk/2").text
    assert '<svg class="lineage"' in ver
    assert 'href="/datasets/people/1"' in ver and 'href="/models/risk/2"' in ver and "@staging" in ver
    assert 'id="gate-status">passed' in ver and "Fairness by sex" in ver and "Female" in ver
    assert "Model card: risk:2" in ver
    mon = client.get("/models/risk/2/monitoring").text
    assert 'data-figure="fig-drift-score"' in mon and "data-drift" in mon
    ds = client.get("/datasets/people/1").text
    assert "income" in ds and "No protection report" in ds
    audit = client.get("/audit?action=model.promote").text
    assert "chain intact" in audit and "model.promote" in audit and "dataset.register" not in audit
    bom = client.get("/models/risk/2/bom.json")
    assert bom.headers["content-disposition"].startswith("attachment")
    assert bom.json()["bomFormat"] == "CycloneDX"


def test_audit_pagination_and_filters(client: Any, ui_app: Any) -> None:
    p = ui_app.state.project
    for i in range(60):
        p.audited("test.bulk", f"item:{i}", {"i": i})
    login(client, "viewer")
    first = client.get("/audit?action=test.bulk").text
    seqs = [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", first)]
    assert len(seqs) == 50 and seqs == sorted(seqs, reverse=True)
    m = re.search(r'href="(/audit\?[^"]+)" id="older"', first)
    assert m
    older = client.get(m.group(1).replace("&amp;", "&")).text
    rest = [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", older)]
    assert len(rest) == 10 and max(rest) < min(seqs)
    assert 'id="older"' not in older
    one = client.get("/audit?subject=item:7&actor=test-user").text
    assert re.findall(r"<td>(item:7\d?)</td>", one) == ["item:7"]
    assert "No entries match." in client.get("/audit?actor=nobody").text


@pytest.mark.parametrize(
    "path",
    ["/static/..%2fapp.py", "/static/%2e%2e/app.py", "/static/..%2f..%2fproject.py", "/static/%2fetc%2fpasswd",
     "/static/..\\app.py", "/static/"],
)
def test_static_path_traversal_refused(client: Any, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert "create_ui_app" not in r.text and "root:" not in r.text


def test_static_serves_css_and_plotly(client: Any) -> None:
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert b"plotly" in js.content[:2000].lower()


def test_unknown_version_is_a_404_page(client: Any) -> None:
    login(client, "viewer")
    r = client.get("/models/risk/99")
    assert r.status_code == 404
    assert "risk" in r.text


def test_mounted_below_another_app(ui_root: Any) -> None:
    """How `bastion serve --ui` can mount it: every link, redirect and cookie stays under the prefix."""
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from bastion.ui import create_ui_app

    outer = FastAPI()
    outer.mount("/ui", create_ui_app(ui_root))
    with TestClient(outer, base_url="http://127.0.0.1") as c:
        r = c.get("/ui/models/risk/2", follow_redirects=False)
        assert r.headers["location"] == "/ui/login?next=%2Fui%2Fmodels%2Frisk%2F2"
        page = c.get(r.headers["location"])
        assert 'action="/ui/login"' in page.text and 'href="/ui/static/app.css"' in page.text
        r = c.post("/ui/login", data={"csrf": csrf_of(page.text), "username": "operator",
                                       "password": PASSWORDS["operator"], "next": "/ui/models/risk/2"},
                   follow_redirects=False)
        assert r.headers["location"] == "/ui/models/risk/2"
        assert "path=/ui" in r.headers["set-cookie"].lower()
        html = c.get("/ui/models/risk/2").text
        assert 'href="/ui/datasets/people/1"' in html and 'src="/ui/static/plotly.min.js"' in html
        assert not re.search(r'(?:href|action|src)="/(?!ui/)', html)
        r = c.post("/ui/aliases/risk/rollback", data={"csrf": csrf_of(html), "alias": "staging", "confirm": "yes"},
                   follow_redirects=False)
        assert r.headers["location"].startswith("/ui/models/risk/1?")
        assert c.get("/ui/static/app.css").status_code == 200


def test_version_page_shows_flavor_framework_and_input_signature(client: Any) -> None:
    login(client, "viewer")
    page = client.get("/models/risk/1").text
    assert 'id="flavor">skops' in page and "gated and served" in page
    assert 'id="framework">scikit-learn==' in page
    assert "2 named features: age, income" in page
