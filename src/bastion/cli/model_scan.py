"""`bastion model scan`: scan a model file, folder or registered version without loading it.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 unreadable input.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bastion.cli._common import console, progress_bar
from bastion.errors import EXIT_CHECKS_FAILED, EXIT_OK, EXIT_USAGE, ScanError

_FORMATS = ("text", "json", "sarif")


def _resolve(target: str, project_root: str | None) -> Path:
    path = Path(target)
    if path.exists() or path.is_symlink():
        return path
    if ":" in target or "@" in target:
        from bastion.project import open_project

        return open_project(project_root).model_path(target)
    raise ScanError(
        f"Cannot scan {target!r}: it is neither an existing file or folder nor a model reference "
        "(NAME:VERSION or NAME@ALIAS)."
    )


def register(app: typer.Typer) -> None:
    """Add the `scan` command to the `model` group."""

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
        from bastion.scan import Severity, scan_path

        kind = "json" if json_out else fmt.lower()
        if kind not in _FORMATS:
            raise ScanError(f"--format must be one of {', '.join(_FORMATS)}; got {fmt!r}.")
        try:
            threshold = Severity.parse(fail_on)
        except ValueError as exc:
            raise ScanError(f"--fail-on: {exc}") from None
        path = _resolve(target, project_root)
        with progress_bar("Scanning", enabled=kind == "text") as bar:
            report = scan_path(path, progress=bar, digest=digest)
        if kind == "json":
            text = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
        elif kind == "sarif":
            text = json.dumps(report.to_sarif(), indent=2) + "\n"
        else:
            text = ""
        if output is not None:
            output.write_text(text if kind != "text" else report.to_text(), encoding="utf-8")
            console.print(f"Wrote the {kind} report to {output}.")
        elif kind == "text":
            from bastion.scan.report import render

            render(report, console)
        else:
            typer.echo(text, nl=False)
        if report.errors:
            raise typer.Exit(EXIT_USAGE)
        raise typer.Exit(EXIT_OK if report.is_clean(threshold) else EXIT_CHECKS_FAILED)
