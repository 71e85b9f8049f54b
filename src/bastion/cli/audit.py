"""`bastion audit log|verify|checkpoint`."""

from __future__ import annotations

from pathlib import Path

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
def verify(
    witness: Path = typer.Option(
        None, "--witness", help="A folder of exported checkpoints (bastion audit checkpoint --export) to hold the "
        "chain to as well."
    ),
    expect_head: str = typer.Option(
        None, "--expect-head", help="SEQ:HASH (or HASH) of a head noted earlier (`audit verify --json`: entries, "
        "head_hash): the chain must still hold it, so a restored older database or a deleted tail is found."
    ),
    reset_head: bool = typer.Option(
        False, "--reset-head", help="Accept this folder's audit head file as it is now (after it was deleted and "
        "you checked the chain against a witness or --expect-head); needs --reason, audited."
    ),
    reason: str = typer.Option(None, "--reason", help="Why the head file is reset (with --reset-head)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Check the hash chain, its signed checkpoints, the tables it caches and every server request journal;
    exit 1 naming each problem."""
    from bastion.audit.verify import parse_expected_head, verify_project
    from bastion.audit.verify import reset_head as reset
    from bastion.errors import ConfigError
    from bastion.serve.audit_sink import verify_journals

    if expect_head is not None:
        parse_expected_head(expect_head)  # a malformed value is a usage error before anything is read
    if reset_head and not (reason or "").strip():
        raise ConfigError("--reset-head needs --reason \"…\" (it goes into the audit log).")
    p = project()
    if reset_head:
        entry = reset(p, reason=reason or "")
        if not json_out:
            console.print(f"Audit head file of {p.root} reset at entry {entry.seq}.")
    report = verify_project(p, witness=witness, seal=True,  # an intact head is sealed by a checkpoint
                            expect_head=expect_head)
    journals = verify_journals(p)
    bad_journals = [j for j in journals if not j.ok]
    if json_out:
        print_json({**report.to_dict(), "journals": [j.to_dict() for j in journals]})
    else:
        chain = report.chain
        if report.ok:
            cps = report.checkpoints
            anchored = (f", {cps.checkpoints} signed checkpoint(s) up to entry {cps.newest_seq}" if cps.key
                        else " (no audit key: run `bastion keys init` to sign checkpoints)")
            console.print(f"[green]Audit chain intact[/]: {chain.entries} entries{anchored}; head "
                          f"{chain.entries}:{chain.head_hash} (keep it to check later with --expect-head).",
                          soft_wrap=True)
        else:
            if not chain.ok:
                console.print(f"[bold red]Audit chain broken[/] at entry {chain.first_bad_seq}: {chain.problem}")
            for problem in report.problems[0 if chain.ok else 1:]:
                console.print(f"[bold red]{problem}[/]")
        for note in report.notes:
            console.print(f"[yellow]note[/]: {note}")
        if journals:
            console.print(f"Server request journals: {len(journals) - len(bad_journals)} of {len(journals)} intact.")
        for j in bad_journals:
            console.print(f"[bold red]Journal {j.path} broken[/]: {j.problem}")
    if not report.ok or bad_journals:
        raise typer.Exit(EXIT_CHECKS_FAILED)


@app.command("checkpoint")
def checkpoint(
    export: str = typer.Option(
        None, "--export", help="Also copy every checkpoint and the audit public key here (a folder, e.g. in a git "
        "repository, or an fsspec URL such as an object-locked bucket) for a witness."
    ),
    vouch: list[int] = typer.Option(
        None, "--vouch", help="Entry SEQ to vouch for in this checkpoint (repeatable): a promote, rollback, gate run "
        "or key change written on a machine without the audit key, after you checked it (`audit log`)."
    ),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Sign the chain head now with the project's audit key (stored in the artifact store); makes the key
    first if the project has none."""
    from bastion.audit.checkpoints import audit_public_key, export_checkpoints, init_audit_key, write_checkpoint
    from bastion.errors import ConfigError, KeyManagementError

    p = project()
    entries = []
    for seq in vouch or []:
        got = p.audit.range(seq, seq)
        if not got:
            raise ConfigError(f"--vouch {seq}: the audit chain has no entry {seq}.")
        entries.append(got[0])
    if entries and export:
        raise ConfigError("--vouch and --export are separate steps; vouch first, then export.")
    if audit_public_key(p.settings) is None:  # a project made before audit keys: make one now (audited)
        fp = init_audit_key(p)
        if not json_out:
            console.print(f"Created the project's audit key {fp[:23]}… (keys/audit-ed25519.pem, mode 0600).")
    if export:
        doc = export_checkpoints(p, export)
    else:
        cp = write_checkpoint(p, vouch=entries)
        if cp is None:
            raise KeyManagementError("The project's audit key cannot be read; see `bastion keys init`.")
        doc = {"newest": cp.to_dict()}
    if json_out:
        print_json(doc)
        return
    newest = doc["newest"]
    console.print(f"Checkpoint {newest['number']} signs entry {newest['seq']} ({newest['hash'][:16]}…).")
    if export:
        console.print(f"Exported {doc['checkpoints']} checkpoint(s) and the audit public key to {export}.")
