"""`bastion data …`: register, list and show dataset versions (scan, protect, reveal and validate
come from their own modules)."""

from __future__ import annotations

import typer

from bastion.cli import _render, data_protect, data_scan
from bastion.cli._common import console, print_json, progress_bar, project

app = typer.Typer(help="Find and protect PII, validate and version datasets.", no_args_is_help=True)


@app.command("register")
def register(
    path: str = typer.Argument(..., help="Parquet/CSV/JSONL file or a folder of Parquet files."),
    name: str = typer.Option(..., "--name", "-n"),
    description: str = typer.Option("", "--description"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Register a data file or folder as a new dataset version (schema and statistics recorded)."""
    with progress_bar("Storing dataset") as bar:
        dv = project().register_dataset(path, name=name, description=description, progress=bar)
    if json_out:
        print_json(dv.to_dict())
    else:
        console.print(f"Registered [bold]{dv.ref}[/]: {dv.rows} rows, {len(dv.schema)} columns ({dv.digest[:19]}…).")


@app.command("list")
def list_(
    name: str = typer.Argument(None),
    all_: bool = typer.Option(False, "--all"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """List dataset versions."""
    rows = project().list_datasets(name, include_deleted=all_)
    if json_out:
        print_json([d.to_dict() for d in rows])
    else:
        console.print(_render.datasets_table(rows))


@app.command("show")
def show(ref: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Show a dataset version: schema and per-column statistics."""
    dv = project().get_dataset(ref, include_deleted=True)
    if json_out:
        print_json(dv.to_dict())
    else:
        console.print(_render.dataset_detail(dv))


data_scan.register(app)
data_protect.register(app)
