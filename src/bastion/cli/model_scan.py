"""`bastion model scan`: scan a model file, folder or registered version without loading it.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 unreadable input.
"""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._scan_command import run_scan


def register(app: typer.Typer) -> None:
    """Add the `scan` command to the `model` group.

    The command's behaviour lives in `bastion.cli._scan_command.run_scan`, which the fast entry path
    (`bastion model scan PATH` without Typer) calls too; keep the options here and its parser in step.
    """

    @app.command("scan")
    def scan(
        target: str = typer.Argument(..., help="Model file, folder, or registered NAME:VERSION / NAME@ALIAS."),
        fmt: str = typer.Option("text", "--format", "-f", help="Output format: text, json or sarif."),
        output: Path = typer.Option(None, "--output", "-o", help="Write the report to this file."),
        fail_on: str = typer.Option("high", "--fail-on", help="Exit 1 when a finding is at least this severe "
                                    "(info, low, medium, high, critical)."),
        json_out: bool = typer.Option(False, "--json", help="Same as --format json."),
        digest: bool = typer.Option(
            False, "--digest/--no-digest",
            help="Also record each file's SHA-256 (reads every byte: slower on large checkpoints, "
            "whose tensor data the scan skips).",
        ),
        project_root: str = typer.Option(None, "--project", help="Project folder (for NAME:VERSION)."),
    ) -> None:
        """Scan model artifacts for code execution and tampering, never loading them."""
        raise typer.Exit(run_scan(target, fmt=fmt, output=output, fail_on=fail_on, json_out=json_out, digest=digest,
                                  project_root=project_root))
