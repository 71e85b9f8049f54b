"""`bastion init` and `bastion gc`."""

from __future__ import annotations

import typer

from bastion.cli._common import console, print_json, project


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        path: str = typer.Argument(".", help="Folder of the project."),
        database_url: str = typer.Option(
            None, "--database-url", help="Metadata DB URL, e.g. postgresql://user@host/db (default: SQLite)."
        ),
        artifacts_url: str = typer.Option(
            None, "--artifacts-url", help="Artifact store, e.g. s3://bucket/prefix (default: .bastion/artifacts)."
        ),
    ) -> None:
        """Create bastion.toml and .bastion/ (by default a SQLite database and a local artifact folder).

        A team points every project folder at the same --database-url and the same --artifacts-url.
        """
        from bastion.project import init_project

        p = init_project(path, database_url=database_url, artifacts_url=artifacts_url)
        console.print(f"Initialized Bastion project in [bold]{p.root}[/] (database: {p.db.dialect}, "
                      f"artifacts: {p.blobs.describe()}).")

    @app.command("gc")
    def gc(
        dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Delete artifacts that only deleted versions refer to."""
        doomed = project().gc(dry_run=dry_run)
        if json_out:
            print_json({"deleted" if not dry_run else "would_delete": doomed})
        else:
            verb = "Would delete" if dry_run else "Deleted"
            console.print(f"{verb} {len(doomed)} artifact blob(s).")
