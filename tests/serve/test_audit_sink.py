"""The request journal: group commit, chain verification, tamper and truncation detection."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest


def _run(journal: Any, n: int) -> None:
    async def main() -> None:
        await asyncio.gather(*(journal.record({"request_id": f"r{i}", "outcome": "ok"}) for i in range(n)))

    asyncio.run(main())


@pytest.mark.parametrize("durability", ["write", "fsync"])
def test_concurrent_requests_share_group_writes_and_chain(tmp_path: Path, durability: str) -> None:
    from bastion.serve.audit_sink import AuditJournal, verify_journal

    j = AuditJournal(tmp_path, durability=durability)  # type: ignore[arg-type]
    j.open()
    _run(j, 200)
    seal = j.close()
    assert seal["entries"] == 201  # the header + 200 requests
    assert j.groups < 200  # group commit: far fewer writes than entries
    rep = verify_journal(j.path)
    assert rep.ok and rep.entries == 201 and rep.head == seal["head"] and not rep.torn_tail
    ids = [json.loads(line).get("request_id") for line in j.path.read_text().splitlines()[1:]]
    assert sorted(ids) == sorted(f"r{i}" for i in range(200))


def test_record_waits_for_the_write(tmp_path: Path) -> None:
    from bastion.serve.audit_sink import AuditJournal

    j = AuditJournal(tmp_path)
    j.open()

    async def main() -> int:
        await j.record({"request_id": "x"})
        return len(j.path.read_bytes().splitlines())  # visible to another reader as soon as record returns

    assert asyncio.run(main()) == 2
    j.close()


@pytest.mark.parametrize("damage", ["edit", "delete_line", "reorder"])
def test_tampering_is_detected(tmp_path: Path, damage: str) -> None:
    from bastion.serve.audit_sink import AuditJournal, verify_journal

    j = AuditJournal(tmp_path)
    j.open()
    _run(j, 5)
    j.close()
    lines = j.path.read_text().splitlines()
    if damage == "edit":
        lines[3] = lines[3].replace('"ok"', '"error"')
    elif damage == "delete_line":
        del lines[2]
    else:
        lines[2], lines[3] = lines[3], lines[2]
    j.path.write_text("\n".join(lines) + "\n")
    rep = verify_journal(j.path)
    assert not rep.ok and rep.problem


def test_torn_tail_is_not_an_acknowledged_entry(tmp_path: Path) -> None:
    from bastion.serve.audit_sink import AuditJournal, iter_journal, verify_journal

    j = AuditJournal(tmp_path)
    j.open()
    _run(j, 3)
    j.close()
    with open(j.path, "ab") as fh:
        fh.write(b'{"request_id": "half')
    rep = verify_journal(j.path)
    assert rep.ok and rep.torn_tail and rep.entries == 4
    assert len(list(iter_journal(j.path))) == 4


def test_verify_journals_against_the_project_audit_log(tmp_path: Path) -> None:
    from bastion.project import init_project
    from bastion.serve.audit_sink import AuditJournal, journal_dir, verify_journals

    p = init_project(tmp_path / "p")
    j = AuditJournal(journal_dir(p.home))
    j.open()
    p.audited("serve.start", "m@a", {"journal_id": j.journal_id, "journal": str(j.path)})
    _run(j, 4)
    p.audited("serve.stop", "m@a", j.close())
    [rep] = verify_journals(p)
    assert rep.ok and rep.sealed
    # truncating the last entries keeps the chain valid but breaks the seal
    lines = j.path.read_text().splitlines()
    j.path.write_text("\n".join(lines[:-2]) + "\n")
    [rep] = verify_journals(p)
    assert not rep.ok and "sealed at 5" in rep.problem
    j.path.unlink()
    [rep] = verify_journals(p)
    assert not rep.ok and "missing" in rep.problem
    # a journal nobody opened through the audit log is suspect too
    rogue = journal_dir(p.home) / "journal-rogue.jsonl"
    k = AuditJournal(journal_dir(p.home))
    k.open()
    k.close()
    k.path.rename(rogue)
    assert any(not r.ok and "no serve.start" in r.problem for r in verify_journals(p))
    p.close()


def test_a_failed_journal_refuses_requests(tmp_path: Path) -> None:
    import os

    from bastion.errors import StoreError
    from bastion.serve.audit_sink import AuditJournal

    j = AuditJournal(tmp_path)
    j.open()
    assert j._fd is not None
    os.close(j._fd)  # simulate the disk going away under the server
    with pytest.raises(StoreError):
        _run(j, 1)
    assert not j.is_open
    with pytest.raises(StoreError):
        _run(j, 1)
    j._fd = None
