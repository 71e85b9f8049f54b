"""`bastion demo`: run the whole lifecycle on bundled data."""

from __future__ import annotations

import typer

from bastion.cli._common import console


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        directory: str = typer.Option(
            None, "--dir", help="Project folder, kept afterwards (default: a temp folder, removed at the end)."
        ),
    ) -> None:
        """Run the lifecycle end to end in a throwaway project: prepare, train, gate, serve, monitor."""
        from bastion.demo import run_demo

        run_demo(directory, console=console)
