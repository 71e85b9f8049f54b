"""`bastion doctor`: one line per check of the database, the artifact store, the keys and the extras."""

from __future__ import annotations

import typer

from bastion.cli._common import console, print_json


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        project_dir: str = typer.Option(None, "--project", help="Project folder (default: nearest above the cwd)."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Check that the database, the artifact store, the keys and the extras are reachable and consistent.

        Exit 0 when every check passes (warnings allowed), 1 when one fails.
        """
        from rich.markup import escape

        from bastion._doctor import run_doctor

        checks = run_doctor(project_dir)
        if json_out:
            print_json([c.to_dict() for c in checks])
        else:
            style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
            for c in checks:
                console.print(f"[{style[c.status]}]{c.status:<4}[/] {c.name:<12} {escape(c.detail)}",
                              soft_wrap=True, highlight=False)
        if any(c.status == "fail" for c in checks):
            raise typer.Exit(1)
