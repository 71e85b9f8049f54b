from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from bastion.project import Project


def _fill(project: Project, n: int = 5) -> None:
    for i in range(n):
        project.audited("test.event", f"subject:{i}", {"i": i})


def test_intact_chain_verifies(any_project: Project) -> None:
    _fill(any_project)
    report = any_project.audit.verify()
    assert report.ok, report.problem
    assert report.entries == 6  # project.init + 5


def test_entries_are_filterable(project: Project) -> None:
    _fill(project)
    project.audited(
        "other.event",
        "x",
        {},
    )
    assert [e.subject for e in project.audit.entries(action="test.", newest_first=False)] == [
        f"subject:{i}" for i in range(5)
    ]
    assert len(project.audit.entries(subject="x")) == 1
    assert all(e.actor == "test-user" for e in project.audit.entries())


@pytest.mark.parametrize(
    "tamper,bad_seq,phrase",
    [
        ("UPDATE audit_log SET details_json = '[99]' WHERE seq = 3", 3, "edited"),
        ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4", 4, "edited"),
        ("DELETE FROM audit_log WHERE seq = 3", 3, "missing"),
        ("DELETE FROM audit_log WHERE seq = 6", 6, "deleted"),
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq = 2", 2, "missing"),
    ],
)
def test_tampering_is_detected_and_named(any_project: Project, tamper: str, bad_seq: int, phrase: str) -> None:
    _fill(any_project)
    with any_project.db.engine.begin() as conn:
        conn.execute(text(tamper))
    report = any_project.audit.verify()
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert phrase in report.problem


def test_reordering_is_detected(project: Project) -> None:
    _fill(project)
    with project.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
        conn.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = -1"))
    report = project.audit.verify()
    assert not report.ok and report.first_bad_seq == 2


def test_inserted_entry_is_detected(project: Project) -> None:
    _fill(project, 3)
    row = project.audit.entries(limit=1)[0]
    with project.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -seq WHERE seq >= 3"))  # make room in two steps
        conn.execute(text("UPDATE audit_log SET seq = 1 - seq WHERE seq < 0"))
        conn.execute(
            text(
                "INSERT INTO audit_log (seq, ts, actor, action, subject, details_json, prev_hash, hash) "
                "VALUES (3, :ts, 'mallory', 'fake', 'x', '{}', :prev, :h)"
            ),
            {"ts": row.ts, "prev": row.prev_hash, "h": row.hash},
        )
    report = project.audit.verify()
    assert not report.ok and report.first_bad_seq == 3


def test_rewritten_chain_is_caught_by_the_head_file(project: Project) -> None:
    _fill(project, 3)
    head = json.loads((project.home / "audit-head.log").read_text().splitlines()[-1])
    assert head["seq"] == 4
    # an attacker with database access rewrites the last entry *and* recomputes its hash
    from bastion.audit.log import entry_hash

    last = project.audit.entries(limit=1)[0]
    forged = entry_hash(last.seq, last.ts, "mallory", last.action, last.subject, '{"i":2}', last.prev_hash)
    with project.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_log SET actor='mallory', details_json=:d, hash=:h WHERE seq=:s"),
            {"d": '{"i":2}', "h": forged, "s": last.seq},
        )
    report = project.audit.verify()
    assert not report.ok and "rewritten" in report.problem


def test_audit_entry_commits_with_the_change_or_not_at_all(project: Project) -> None:
    before = project.audit.count()
    with pytest.raises(RuntimeError):
        with project.transaction() as conn:
            project.record(conn, "x", "y", {})
            raise RuntimeError("boom")
    assert project.audit.count() == before
    assert project.audit.verify().ok


def test_head_log_is_compacted_and_still_verifies(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.audit.log import AuditLog

    monkeypatch.setattr(AuditLog, "_HEAD_COMPACT", 200)
    _fill(project, 12)
    lines = (project.home / "audit-head.log").read_text().splitlines()
    assert len(lines) < 12
    assert json.loads(lines[-1])["seq"] == 13
    assert project.audit.verify().ok
    with project.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq >= 12"))
    report = project.audit.verify()
    assert not report.ok and report.first_bad_seq == 12


# -- filtered pages: found through an index, the same rows as a plain filter (dashboard, bench/ui) -----------

_SUBJECTS = ["model-a:1", "model-a:12", "model-b:1", "Model-A:1", "50%_off:1", "50x_off:1", "dataset:7"]
_ACTIONS = ["model.register", "model.promote", "gate.run", "Gate.run", "ui.login"]


def _bulk(project: Project, n: int) -> None:
    """``n`` entries written straight into the table (fast; ``entries`` does not read the chain)."""
    rows = [{"seq": i + 2, "ts": "2026-12-08T00:00:00+00:00", "actor": ("ann", "bob")[i % 2],
             "action": _ACTIONS[i % len(_ACTIONS)], "subject": _SUBJECTS[(i * 3) % len(_SUBJECTS)],
             "details_json": "{}", "prev_hash": "0" * 64, "hash": "0" * 64} for i in range(n)]
    from bastion.store.schema import audit_log
    with project.db.write() as conn:
        conn.execute(audit_log.insert(), rows)


_FILTERS: list[dict[str, Any]] = [
    {"subject": "model-a"}, {"subject": "model-a:1"}, {"subject": "Model-A"}, {"subject": "model-"},
    {"subject": "50%"}, {"subject": "50_"}, {"subject": "nothing"}, {"action": "gate."}, {"action": "Gate"},
    {"action": "gate.run", "subject": "model-b"}, {"actor": "bob", "subject": "model-a:1"},
    {"actor": "ann", "action": "model."}, {"subject": "model-a", "before": 300}, {"actor": "bob", "before": 9},
]


@pytest.mark.parametrize("probe", [4096, 3], ids=["found-among-the-newest", "found-through-the-index"])
def test_filtered_pages_hold_exactly_the_matching_entries(any_project: Project, monkeypatch: pytest.MonkeyPatch,
                                                          probe: int) -> None:
    _bulk(any_project, 400)
    monkeypatch.setattr(type(any_project.audit), "_PROBE", probe)
    everything = any_project.audit.entries()
    for filters in _FILTERS:
        before = filters.get("before")
        want = [e.seq for e in everything
                if (not filters.get("actor") or e.actor == filters["actor"])
                and e.action.startswith(filters.get("action", ""))
                and e.subject.startswith(filters.get("subject", ""))  # case-sensitive; % and _ are literal
                and (before is None or e.seq < before)]
        for limit in (1, 7, 51):
            got = any_project.audit.entries(limit=limit, **filters)
            assert [e.seq for e in got] == want[:limit], (filters, limit)
        assert [e.seq for e in any_project.audit.entries(newest_first=False, **filters)] == sorted(want), filters
    assert len({e.subject for e in everything}) == len(_SUBJECTS) + 1  # every subject (and project.init) is there


def test_a_filtered_page_never_scans_the_whole_log(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's LIKE ignores case and so cannot use an index: the filtered dashboard page scanned every entry
    (636 ms at 1M entries in bench/ui). Each statement must read the log through an index, or only a bounded
    window of the newest entries."""
    from sqlalchemy import event

    _bulk(project, 50)
    statements: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, params: object, context: object, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):  # not the BEGIN/COMMIT of the store
            statements.append((statement, params))

    event.listen(project.db.engine, "before_cursor_execute", seen)
    try:
        for filters in ({"subject": "model-z:7"}, {"action": "gate.run", "subject": "model-z"},
                        {"action": "model.z"}):
            statements.clear()
            assert project.audit.entries(limit=51, **filters) == []  # type: ignore[arg-type]
            plans = []
            with project.db.read() as conn:
                for statement, params in statements:
                    plans.append(conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all())  # type: ignore[arg-type]
            assert len(plans) == 3, statements  # the newest window, the index, the page's rows
            for plan in plans:
                windows = {row[0] for row in plan if row[3].startswith("CO-ROUTINE")}
                scans = [row for row in plan if row[3] == "SCAN audit_log" and row[1] not in windows]
                assert not scans, (filters, plan)
            assert any("INDEX ix_audit_log_subject" in row[3] or "INDEX ix_audit_log_action" in row[3]
                       for row in plans[1]), plans[1]
            if "subject" in filters:  # the subject's index, the most selective, even beside an action
                assert any("ix_audit_log_subject" in row[3] for row in plans[1]), plans[1]
    finally:
        event.remove(project.db.engine, "before_cursor_execute", seen)


@pytest.mark.parametrize(("prefix", "upper"), [
    ("model-050:7", "model-050:8"), ("a", "b"), ("\ud7ff", "\ue000"), ("x\U0010ffff", None), ("é", "ê"),
])
def test_the_prefix_range_ends_above_every_string_with_that_prefix(prefix: str, upper: str | None) -> None:
    from bastion.audit.log import _successor

    assert _successor(prefix) == upper
    if upper is not None:
        for tail in ("", "\x00", "zzz", "\U0010ffff\U0010ffff"):
            assert (prefix + tail).encode("utf-8", "surrogatepass") < upper.encode("utf-8", "surrogatepass")
