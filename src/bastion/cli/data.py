"""`bastion data …`: register, list and show dataset versions (scan, protect, reveal and validate
come from their own modules)."""

from __future__ import annotations

import typer

from bastion.cli import _render, data_protect, data_scan
from bastion.cli._common import console, print_json, progress_bar, project
from bastion.cli._render import short

app = typer.Typer(help="Find and protect PII, validate and version datasets.", no_args_is_help=True)


def _lineage_parent(p: object, item: str) -> str:
    """A ``--derived-from`` value as stored: a pinned dataset reference, or the sha256 of a raw file."""
    import hashlib
    import os
    import re

    from bastion.errors import BastionError, DataError

    if re.fullmatch(r"sha256:[0-9a-f]{64}", item):
        return item
    if os.path.isfile(item):
        h = hashlib.sha256()
        with open(item, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return "sha256:" + h.hexdigest()
    try:
        return str(p.get_dataset(item).ref)  # type: ignore[attr-defined]
    except BastionError:
        raise DataError(f"--derived-from {item!r} is neither a registered dataset (NAME:VERSION or NAME@ALIAS), "
                        "an existing file, nor sha256:<64 hex digits>.") from None


@app.command("register")
def register(
    path: str = typer.Argument(..., help="Parquet/CSV/JSONL file or a folder of Parquet files."),
    name: str = typer.Option(..., "--name", "-n"),
    description: str = typer.Option("", "--description"),
    derived_from: list[str] = typer.Option(
        [], "--derived-from",
        help="What this data was made from, for lineage (repeatable): a dataset NAME:VERSION or NAME@ALIAS "
             "(e.g. the protected patients:1), a raw file (its sha256 is recorded, the file is not stored), "
             "or sha256:<hex>.",
    ),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Register a data file or folder as a new dataset version (schema and statistics recorded)."""
    p = project()
    parents = [_lineage_parent(p, item) for item in derived_from]
    with progress_bar("Storing dataset") as bar:
        dv = p.register_dataset(path, name=name, description=description, derived_from=parents, progress=bar)
    if json_out:
        print_json(dv.to_dict())
    else:
        digest = short(dv.digest, 19)
        console.print(f"Registered [bold]{dv.ref}[/]: {dv.rows} rows, {len(dv.schema)} columns ({digest}).")


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
