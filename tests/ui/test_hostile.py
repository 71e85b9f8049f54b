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
