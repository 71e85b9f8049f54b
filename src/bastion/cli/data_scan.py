"""`bastion data scan`: find PII in a table (file, folder or DataFrame path) and explain each column."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bastion.cli._common import console, print_json, progress_bar
from bastion.errors import EXIT_CHECKS_FAILED


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def scan(
    path: str = typer.Argument(..., help="CSV, Parquet or JSONL file, or a folder of them."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON (schema_version 1)."),
    output: str | None = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
    sample_rows: int = typer.Option(1000, "--sample-rows", min=1, help="Rows used to classify columns."),
    columns: str | None = typer.Option(None, "--columns", help="Comma-separated columns to scan."),
    entities: str | None = typer.Option(None, "--entities", help="Comma-separated entity types to look for."),
    sample_text: bool = typer.Option(False, "--sample-text", help="Scan free text on the sample only."),
    ner: str | None = typer.Option(None, "--ner", help="'spacy' or 'spacy:MODEL' (an installed model)."),
    fail_on_pii: bool = typer.Option(False, "--fail-on-pii", help="Exit 1 when any PII is found."),
) -> None:
    """Scan a table for PII: entity columns, free-text columns with spans, masked examples only."""
    from bastion.data.pii import scan_table

    with progress_bar("Scanning free text", enabled=not json_out) as bar:
        report = scan_table(
            path, sample_rows=sample_rows, text_full=not sample_text, columns=_split(columns),
            entities=_split(entities), progress=bar, ner=ner,
        )
    doc = report.to_dict()
    if output:
        import json

        Path(output).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if json_out:
        print_json(doc)
    else:
        table = Table(title=f"PII scan of {report.source} ({report.rows_scanned:,} rows read)")
        for col in ("column", "entity", "kind", "confidence", "share", "masked examples", "evidence"):
            table.add_column(col, overflow="fold")
        for f in report.columns:
            entity = f.entity or (", ".join(f"{k} {v}" for k, v in sorted(f.spans_found.items())) or "–")
            table.add_row(
                f.column, entity, f.kind, f"{f.confidence:.2f}" if f.kind != "none" else "",
                f"{f.share:.0%}" if f.kind != "none" else "", "\n".join(f.masked_examples), "; ".join(f.evidence),
            )
        console.print(table)
        console.print(f"{len(report.pii_columns())} of {len(report.columns)} columns hold PII.")
    if fail_on_pii and report.pii_columns():
        raise typer.Exit(EXIT_CHECKS_FAILED)


def register(app: typer.Typer) -> None:
    """Add the `scan` command to the `data` group."""
    app.command("scan")(scan)
