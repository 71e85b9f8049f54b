"""`bastion audit verify` also checks the server's request journals against their seals."""

from __future__ import annotations

import asyncio
import json

from bastion.project import Project
from bastion.serve.audit_sink import AuditJournal, journal_dir, request_entry


def _served(project: Project, n: int = 5) -> AuditJournal:
    journal = AuditJournal(journal_dir(project.home))
    journal.open()
    project.audited("serve.start", "m@production", {"journal_id": journal.journal_id})

    async def go() -> None:
        for i in range(n):
            await journal.record(request_entry(request_id=f"r{i}", key_id="k1", outcome="ok", latency_ms=1.0))

    asyncio.run(go())
    project.audited("serve.stop", "m@production", journal.close())
    return journal


def test_intact_journal_passes_and_an_edited_one_fails(cli, project: Project) -> None:  # type: ignore[no-untyped-def]
    journal = _served(project)
    r = cli("audit", "verify", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and len(doc["journals"]) == 1 and doc["journals"][0]["ok"]

    lines = journal.path.read_text().splitlines()
    edited = json.loads(lines[2])
    edited["outcome"] = "error"
    lines[2] = json.dumps(edited)
    journal.path.write_text("\n".join(lines) + "\n")
    r = cli("audit", "verify")
    assert r.exit_code == 1
    assert "broken" in r.stdout


def test_truncated_journal_fails(cli, project: Project) -> None:  # type: ignore[no-untyped-def]
    journal = _served(project)
    lines = journal.path.read_text().splitlines()
    journal.path.write_text("\n".join(lines[:-2]) + "\n")
    r = cli("audit", "verify", "--json")
    assert r.exit_code == 1
    assert not json.loads(r.stdout)["journals"][0]["ok"]
