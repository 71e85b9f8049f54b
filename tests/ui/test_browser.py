"""End to end in headless Chromium (the Debian package, driven by Playwright): log in, browse, promote,
roll back, be refused as a viewer, log out. Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORDS


def find_chromium() -> str:
    """The system's Chromium (``CHROMIUM_BIN``, else the usual names on PATH); `make test` installs it."""
    env = os.environ.get("CHROMIUM_BIN")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Chromium is missing: run `sudo apt-get install chromium` (make test does it when root).")


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(ui_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    import uvicorn

    from bastion.ui import create_ui_app

    root = tmp_path_factory.mktemp("ui-browser") / "proj"
    shutil.copytree(ui_template, root)
    app = create_ui_app(root)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        assert time.monotonic() < deadline, "the dashboard server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=find_chromium(), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.console_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()


def _shot(pg: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _login(pg: Any, base: str, role: str) -> None:
    pg.goto(base + "/")
    assert "/login" in pg.url
    pg.fill("#username", role)
    pg.fill("#password", PASSWORDS[role])
    pg.click("#login")
    pg.wait_for_url(base + "/")
    assert pg.inner_text("#whoami") == role


def test_operator_journey(server: tuple[str, Any], page: Any) -> None:
    base, app = server
    project = app.state.project
    page.goto(base + "/")
    _shot(page, "01-login")
    _login(page, base, "operator")
    row = page.locator('tr[data-model="risk"]')
    assert "staging → v2" in row.inner_text()
    _shot(page, "02-inventory")

    page.click('tr[data-model="risk"] >> text=risk:2')
    page.wait_for_url(base + "/models/risk/2")
    assert page.locator("svg.lineage").is_visible()
    assert page.locator('svg.lineage a[href="/datasets/people/1"]').count() == 1
    assert page.inner_text("#gate-status") == "passed"
    page.wait_for_selector("#gate div.plot[data-drawn='1'] .main-svg")  # Plotly drew the fairness chart
    page.wait_for_selector("#metrics-chart div.plot[data-drawn='1'] .main-svg")  # metrics across versions
    _shot(page, "03-version")

    # a protection report whose k-anonymity is below the policy: shown in warning colour
    project.attach("people:1", "protection", {
        "schema_version": 1, "created": "2026-01-01T00:00:00+00:00", "rows": 200, "policy_source": "test",
        "columns": [], "k_anonymity": {"k": 2, "min_k": 5, "satisfied": False, "classes": 150,
                                       "rows_below_min_k": 120, "quasi_identifiers": ["age", "sex"]}},
        subject_kind="dataset")
    page.click('svg.lineage a[href="/datasets/people/1"]')
    page.wait_for_url(base + "/datasets/people/1")
    assert "people:1" in page.inner_text("#title")
    page.wait_for_selector("#distributions div.plot[data-drawn='1'] .main-svg")
    assert page.locator("#distributions div.plot[data-drawn='1']").count() == 4
    warning = page.locator("#kanon-warning")
    assert "below the policy" in warning.inner_text()
    assert warning.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 244, 229)"
    _shot(page, "04-dataset")

    page.goto(base + "/models/risk/2/monitoring")
    page.wait_for_selector("div.plot[data-drawn='1'] .main-svg")
    assert page.inner_text("#drift-status") == "amber"
    page.wait_for_selector("#distributions div.plot[data-drawn='1'] .main-svg")
    assert page.locator("#distributions div.plot[data-drawn='1']").count() == 3
    assert "p-value (adjusted)" in page.inner_text("#features")
    _shot(page, "05-monitoring")

    # roll back staging (v2 -> v1) with confirmation
    page.goto(base + "/models/risk/2")
    page.click("#rollback-staging")
    assert "it will point at v1 again" in page.inner_text("#decision")
    _shot(page, "06-rollback-confirm")
    page.fill("#reason", "browser test")
    page.click("#confirm")
    page.wait_for_url(f"{base}/models/risk/1?**")
    assert "Rolled staging back to risk:1" in page.inner_text("#flash")
    assert project.get_model("risk@staging").version == 1

    # promote v2 back to staging
    page.goto(base + "/models/risk/2")
    page.select_option("#promote-alias", "staging")
    page.click("#promote")
    assert "allow" in page.inner_text("#decision")
    _shot(page, "07-promote-confirm")
    page.click("#confirm")
    page.wait_for_url(f"{base}/models/risk/2?**")
    assert project.get_model("risk@staging").version == 2

    # production needs a gate attestation: refused, with the reason, and no button
    page.select_option("#promote-alias", "production")
    page.click("#promote")
    assert "refuse" in page.inner_text("#decision")
    assert "no gate attestation" in page.inner_text("#reasons")
    assert page.locator("#confirm").count() == 0
    _shot(page, "08-promote-refused")

    page.goto(base + "/audit")
    assert "chain intact" in page.inner_text("#chain")
    page.fill("#f-actor", "operator")
    page.click("#filter")
    text = page.inner_text("#audit")
    assert "model.rollback" in text and "model.promote" in text
    _shot(page, "09-audit")

    page.click("#logout")
    page.wait_for_url(base + "/login")
    page.goto(base + "/")
    assert "/login" in page.url
    assert page.console_errors == []


def test_viewer_is_refused(server: tuple[str, Any], page: Any) -> None:
    base, app = server
    _login(page, base, "viewer")
    page.goto(base + "/models/risk/2")
    assert page.locator("#actions").count() == 0  # no buttons …
    _shot(page, "10-viewer-version")
    page.goto(base + "/models/risk/2/promote?alias=staging")
    assert "operator role" in page.inner_text("#error")
    # … and a hand-made POST with the viewer's own valid CSRF token is refused by the server
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    before = app.state.project.get_model("risk@staging").version
    resp = page.request.post(base + "/aliases/risk/rollback", form={"csrf": csrf, "alias": "staging", "confirm": "yes"})
    assert resp.status == 403
    assert app.state.project.get_model("risk@staging").version == before
    # a form posted without the CSRF token is refused too
    resp = page.request.post(base + "/logout", form={})
    assert resp.status == 403
    _shot(page, "11-viewer-refused")
    page.click("#logout")
    page.wait_for_url(base + "/login")
    # the only console error is the browser noting the refused page's 403 status
    assert [e for e in page.console_errors if "403" not in e] == []
    assert len(page.console_errors) == 1
