from __future__ import annotations

import json

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
