"""`bastion vulns import|check`: thin doors onto ``bastion.vulns`` (advisory store and matching)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import console, print_json, progress_bar, project

app = typer.Typer(
    help="Vulnerability advisories (OSV, offline) matched against the recorded environment of served models.",
    no_args_is_help=True,
)


@app.command("import")
def import_(
    source: Path = typer.Argument(..., help="OSV export: a zip, a folder of OSV JSON records, or one JSON file."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Import OSV records (PyPI ecosystem) into the project; a newer 'modified' replaces an older record."""
    from bastion.vulns import import_advisories

    with progress_bar("Reading OSV records", enabled=not json_) as bar:
        result = import_advisories(project(), source, progress=bar)
    if json_:
        print_json(result.to_dict())
        return
    console.print(
        f"Imported {result.source} ({result.digest[:19]}…): {result.records:,} records, {result.added:,} new, "
        f"{result.updated:,} updated, {result.unchanged:,} unchanged, {result.withdrawn:,} withdrawn, "
        f"{result.ignored:,} without a PyPI package.",
        soft_wrap=True,
    )


def _print_report(doc: dict[str, Any], response: dict[str, Any]) -> None:
    from rich.table import Table

    versions = doc["versions"]
    if not versions:
        console.print("No model version is under an alias; nothing to check.")
    for note in doc["notes"]:
        console.print(f"note: {note}", soft_wrap=True)
    affected = [v for v in versions if v["affected"] or v["error"]]
    if affected and console.is_terminal:  # piped output gets one plain line per match below
        t = Table(title="Affected model versions")
        for col in ("model", "aliases", "package", "installed", "advisory", "aliases (CVE/GHSA)", "severity", "fixed"):
            t.add_column(col, overflow="fold")
        for v in affected:
            if v["error"]:
                t.add_row(v["model"], ", ".join(v["aliases"]), "-", "-", f"cannot check: {v['error']}", "", "", "")
            for m in v["matches"]:
                t.add_row(v["model"], ", ".join(v["aliases"]), m["package"], m["installed"], m["id"],
                          ", ".join(m["aliases"]), m["severity"], m["fixed"] or "-")
        console.print(t, soft_wrap=True)
    for v in affected:
        for m in v["matches"]:
            served = ", ".join(f"{v['name']}@{a}" for a in v["aliases"]) or "not under an alias"
            console.print(f"AFFECTED {v['model']} ({served}): {m['package']} {m['installed']} - {m['id']} "
                          f"({m['severity']})", soft_wrap=True, highlight=False, markup=False)
    clean = len(versions) - len(affected)
    console.print(f"{len(versions)} version(s) checked against {doc['advisories']:,} advisories: "
                  f"{len(affected)} affected, {clean} clean.")
    for a in response.get("alerts", []):
        console.print(f"ALERT [{a.severity}] {a.rule}: {a.message}", soft_wrap=True, highlight=False, markup=False)
    for r in response.get("rollbacks", []):
        if r.get("rolled_back"):
            console.print(f"Rolled back {r['model']}@{r['alias']}: version {r['from_version']} -> {r['to_version']}")
        else:
            console.print(f"Not rolled back {r['model']}@{r['alias']}: {r['reason']}", soft_wrap=True)


@app.command("check")
def check(
    ref: str | None = typer.Argument(None, help="NAME@ALIAS or NAME:VERSION (default: every version under an alias)."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    no_alerts: bool = typer.Option(False, "--no-alerts", help="Do not send alerts or roll back (report only)."),
) -> None:
    """Match imported advisories against recorded environments; exit 1 when a version is affected."""
    from bastion.vulns import check_versions
    from bastion.vulns.respond import respond

    p = project()
    report = check_versions(p, ref)
    response = respond(p, report=report, dispatch=not no_alerts) if not no_alerts else {}
    doc = report.to_dict()
    if json_:
        print_json({**doc, "alerts": [a.to_dict() for a in response.get("alerts", [])],
                    "rollbacks": response.get("rollbacks", [])})
    else:
        _print_report(doc, response)
    if report.exit_code:
        raise typer.Exit(report.exit_code)
