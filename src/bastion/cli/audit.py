"""`bastion audit log|verify`."""

from __future__ import annotations

import typer
from rich.table import Table

from bastion.cli._common import console, print_json, project
from bastion.cli._render import short
from bastion.errors import EXIT_CHECKS_FAILED

app = typer.Typer(help="Read and verify the tamper-evident audit log.", no_args_is_help=True)


@app.command("log")
def log(
    limit: int = typer.Option(50, "--limit", "-n", min=1),
    actor: str = typer.Option(None, "--actor"),
    action: str = typer.Option(None, "--action", help="Action prefix, e.g. model.promote."),
    subject: str = typer.Option(None, "--subject", help="Subject prefix, e.g. churn:3."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Show audit entries, newest first."""
    entries = project().audit.entries(limit=limit, actor=actor, action=action, subject=subject)
    if json_out:
        print_json([e.to_dict() for e in entries])
        return
    t = Table(title="Audit log")
    for col in ("seq", "time", "actor", "action", "subject", "details"):
        t.add_column(col)
    for e in entries:
        details = ", ".join(f"{k}={v}" for k, v in sorted(e.details.items()))
        t.add_row(str(e.seq), e.ts[:19], e.actor, e.action, e.subject, short(details, 80))
    console.print(t)


@app.command("verify")
def verify(json_out: bool = typer.Option(False, "--json")) -> None:
    """Check the whole hash chain and every server request journal; exit 1 naming the first bad entry."""
    from bastion.serve.audit_sink import verify_journals

    p = project()
    report = p.audit.verify()
    journals = verify_journals(p)
    bad_journals = [j for j in journals if not j.ok]
    if json_out:
        print_json({**report.to_dict(), "journals": [j.to_dict() for j in journals]})
    else:
        if report.ok:
            head = short(report.head_hash, 16)
            console.print(f"[green]Audit chain intact[/]: {report.entries} entries, head {head}.")
        else:
            console.print(f"[bold red]Audit chain broken[/] at entry {report.first_bad_seq}: {report.problem}")
        if journals:
            console.print(f"Server request journals: {len(journals) - len(bad_journals)} of {len(journals)} intact.")
        for j in bad_journals:
            console.print(f"[bold red]Journal {j.path} broken[/]: {j.problem}")
    if not report.ok or bad_journals:
        raise typer.Exit(EXIT_CHECKS_FAILED)
