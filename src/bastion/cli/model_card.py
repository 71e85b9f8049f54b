"""`bastion model card` (owned by the gates work)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bastion.cli._common import console, project


def register(app: typer.Typer) -> None:
    """Add `card` to the `model` group."""

    @app.command("card")
    def card(
        ref: str = typer.Argument(..., help="Model version, NAME:VERSION or NAME@ALIAS."),
        fmt: str = typer.Option("md", "--format", "-f", help="md, html or cyclonedx (CycloneDX 1.6 ML-BOM JSON)."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
        project_dir: str | None = typer.Option(None, "--project", help="Project folder (default: nearest)."),
    ) -> None:
        """Print or write the model card (Markdown, HTML) or the validated CycloneDX ML-BOM."""
        from bastion.errors import ConfigError
        from bastion.gates import card as cards

        p = project(project_dir)
        if fmt == "md":
            text = cards.render_markdown(p, ref)
        elif fmt == "html":
            text = cards.render_html(p, ref)
        elif fmt == "cyclonedx":
            text = json.dumps(cards.cyclonedx_bom(p, ref), indent=2) + "\n"
        else:
            raise ConfigError(f"--format must be md, html or cyclonedx; got {fmt!r}.")
        if output:
            output.write_text(text, encoding="utf-8")
            console.print(f"Wrote {output}")
        else:
            typer.echo(text, nl=False)
