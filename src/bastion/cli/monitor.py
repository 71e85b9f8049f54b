"""`bastion monitor report|run|alerts|labels add`: thin doors onto ``bastion.monitor``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import console, print_json, progress_bar, project
from bastion.errors import DataError

app = typer.Typer(help="Monitor models in production: drift, performance, anomalies, attacks, alerts.",
                  no_args_is_help=True)
labels_app = typer.Typer(help="Delayed ground truth for logged predictions.", no_args_is_help=True)
app.add_typer(labels_app, name="labels")


def _config(path: str | None, proj: Any = None) -> Any:
    from bastion.monitor.config import POLICY_FILE, load_monitoring_config

    if path:
        if not Path(path).exists():
            raise DataError(f"Policy file {path} does not exist.")
        return load_monitoring_config(path)
    for base in ([Path(proj.root)] if proj is not None else []) + [Path.cwd()]:
        if (base / POLICY_FILE).exists():
            return load_monitoring_config(base / POLICY_FILE)
    return load_monitoring_config(None)


def _engine(name: str, scheduler: str | None) -> Any:
    if name == "local" and not scheduler:
        return None
    from bastion.engine import get_engine

    return get_engine(name, scheduler=scheduler)


def _summary(doc: dict[str, Any], output: Path | None) -> None:
    from rich.markup import escape  # column names and messages are data, never Rich markup
    from rich.table import Table

    from bastion.monitor.figures import drift_score

    drift = doc["drift"]
    if doc.get("window_start") or doc.get("window_end"):
        console.print(f"Window {doc.get('window_start')} .. {doc.get('window_end')} of {doc.get('model')} "
                      f"({drift.get('n_current', 0):,} answered requests)")
    t = Table(title="Drift", show_lines=False)
    for col in ("column", "kind", "test", "statistic", "p", "p (adj.)", "threshold", "score", "drift"):
        t.add_column(col)
    for f in drift["features"]:
        test = f["tests"].get(f["verdict_test"]) or {}
        stat, p, p_adj = test.get("statistic"), f.get("p_value"), f.get("p_value_adjusted")
        score = drift_score(basis=test.get("basis"), statistic=stat, threshold=f.get("threshold"),
                            p_value_adjusted=p_adj)
        t.add_row(
            escape(f["column"]) + (" (out)" if f.get("prediction") else ""),
            f["kind"],
            f["verdict_test"],
            "–" if stat is None else f"{stat:.4g}",
            "–" if p is None else f"{p:.3g}",
            "–" if p_adj is None else f"{p_adj:.3g}",
            ("p < " if test.get("basis") == "p_value" or (not test and f["verdict_test"] in ("ks", "chi2"))
             else "> ") + f"{f['threshold']:.3g}",
            "–" if score is None else f"{score:.3g}",
            "[red]yes[/]" if f["drifted"] else "no",
        )
    console.print(t)
    verdict = "[bold red]DRIFT[/]" if drift["dataset_drift"] else "[green]no drift[/]"
    console.print(f"Dataset: {verdict} ({drift['n_drifted']} drifted; {drift['n_reference']:,} reference rows, "
                  f"{drift['n_current']:,} current rows, verdict by {drift['verdict']})")
    if doc.get("anomaly"):
        a = doc["anomaly"]
        console.print(f"Anomalous inputs: {a['share']:.2%} (limit {a['max_share']:.1%})")
    for w in doc.get("performance") or []:
        tag = " [yellow](estimated)[/]" if w["estimated"] else ""
        shown = ", ".join(f"{k}={v:.3f}" for k, v in w["metrics"].items() if v is not None)
        console.print(f"Performance: {shown}{tag}")
    for a in doc.get("attacks") or []:
        said = escape(f"{a['rule']} {a['subject']}: {a['message']}")
        console.print(f"[red]attack[/] {said}")
    for a in doc.get("alerts") or []:
        said = escape(f"[{a['severity']}] {a['rule']}: {a['message']}")
        console.print(f"[bold red]ALERT[/] {said}")
    if doc.get("rollback"):
        r = doc["rollback"]
        if r.get("skipped"):
            console.print(f"Rollback not repeated: {r['reason']}.")
        else:
            console.print(f"[bold red]Rolled back[/] {r['model']}@{r['alias']} -> version {r.get('to_version')}")
    if output:
        console.print(f"Report written to {output}")


@app.command("alerts")
def alerts_cmd(
    model: str = typer.Option(None, "--model", help="Only alerts about this model (NAME or NAME:VERSION)."),
    pending: bool = typer.Option(False, "--pending", help="Only alerts some sink has not taken yet."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many of the newest records."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Alerts raised by any machine of the deployment (the shared alert log), newest last."""
    from rich.markup import escape
    from rich.table import Table

    from bastion.monitor.alerts import stored_alerts, stored_pending_alerts

    p = project()
    if pending:
        recs = stored_pending_alerts(p.db)[-limit:]
    else:
        recs = stored_alerts(p.db, model=model, kind="alert", limit=limit)
    if model and pending:
        recs = [r for r in recs if r.get("model") == model or str(r.get("model", "")).startswith(model + ":")]
    if json_out:
        print_json(recs)
        return
    if not recs:
        console.print("No alerts.")
        return
    table = Table("created", "model", "severity", "rule", "message")
    for r in recs:
        table.add_row(*(escape(str(r.get(k, ""))) for k in ("created", "model", "severity", "rule", "message")))
    console.print(table)


@app.command("report")
def report(
    current: str = typer.Option(..., "--current", "-c", help="Current data: Parquet file(s), folder or glob."),
    model: str | None = typer.Option(None, "--model", "-m", help="NAME@ALIAS or NAME:VERSION; reference from lineage."),
    reference: str | None = typer.Option(None, "--reference", "-r", help="Reference Parquet file (no registry)."),
    target: str | None = typer.Option(None, "--target", "-t", help="Target column (compared as target drift)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report (.html or .json)."),
    config: str | None = typer.Option(None, "--config", help="Policy file with a 'monitoring:' section."),
    engine: str = typer.Option("local", "--engine", help="local or dask."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (with --engine dask)."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Compare current data (or prediction-log files) with a reference and write a report."""
    from bastion.monitor.report import write_report
    from bastion.monitor.runner import reference_for_model, report_from_data

    if (model is None) == (reference is None):
        raise DataError("Give exactly one of --model (reference from the registry) or --reference FILE.")
    proj = project() if model else None
    cfg = _config(config, proj)
    mv: Any = None
    if model:
        assert proj is not None
        mv, ref_data, _ = reference_for_model(proj, model)
        target = target or mv.params.get("target") or mv.tags.get("target")
    else:
        ref_data = reference
    eng = _engine(engine, scheduler)
    try:
        with progress_bar("Drift by column", enabled=not json_) as bar:
            result = report_from_data(ref_data, current, target=target, config=cfg, engine=eng, progress=bar,
                                      project=proj, model_ref=mv.ref if model else None)
    finally:
        if eng is not None:
            eng.close()
    if output:
        write_report(result, output)
    doc = result.to_dict()
    if json_:
        print_json(doc)
    else:
        _summary(doc, output)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command("run")
def run(
    model: str = typer.Option(..., "--model", "-m", help="NAME@ALIAS to monitor."),
    window: str = typer.Option("1h", "--window", help="Window length (e.g. 15m, 1h, 1d)."),
    every: str = typer.Option("5m", "--every", help="How often to run (ignored with --once)."),
    once: bool = typer.Option(False, "--once", help="Run one window and exit (1 when an alert was raised)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the latest report (.html or .json)."),
    config: str | None = typer.Option(None, "--config", help="Policy file with a 'monitoring:' section."),
    engine: str = typer.Option("local", "--engine", help="local or dask."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (with --engine dask)."),
    max_runs: int = typer.Option(0, "--max-runs", help="Stop after this many windows (0: run until stopped)."),
    json_: bool = typer.Option(False, "--json", help="Print each result as JSON."),
    vulns_every: str = typer.Option(
        "1d", "--vulns-every",
        help="How often to re-check advisories and re-scan the served versions (e.g. 6h, 1d; 'off' to disable).",
    ),
) -> None:
    """Monitor a served model continuously: every --every, the last --window of its prediction log."""
    from bastion.monitor.report import write_report
    from bastion.monitor.runner import parse_duration, run_window

    win, step = parse_duration(window), parse_duration(every)
    vulns_step = None if vulns_every.strip().lower() == "off" else parse_duration(vulns_every)
    proj = project()
    cfg = _config(config, proj)
    eng = _engine(engine, scheduler)
    worst = 0
    runs = 0
    try:
        while True:
            with progress_bar("Drift by column", enabled=not json_) as bar:
                result = run_window(proj, model, window=win, end=datetime.now(UTC), config=cfg, engine=eng,
                                    progress=bar)
            runs += 1
            worst = max(worst, result.exit_code)
            if output:
                write_report(result, output)
            doc = result.to_dict()
            if not json_:
                _summary(doc, output)
            # advisories and re-scans of the served versions, when due (printed after the window's summary)
            vulns = _vulns_pass(proj, model, vulns_step, cfg, json_) if vulns_step is not None else None
            if vulns is not None:
                worst = max(worst, int(vulns["exit_code"]))
            if json_:
                if vulns is not None:  # one JSON document per window, the vulnerability pass inside it
                    doc["vulnerabilities"] = vulns
                print_json(doc)
            if once or (max_runs and runs >= max_runs):
                break
            time.sleep(step.total_seconds())
    except KeyboardInterrupt:
        console.print("stopped.")
    finally:
        if eng is not None:
            eng.close()
    if worst:
        raise typer.Exit(worst)


def _vulns_pass(proj: Any, model: str, every: Any, cfg: Any, json_: bool) -> dict[str, Any] | None:
    """The scheduled vulnerability pass (advisories + re-scans of the served versions) when it is due.

    Returns its document (None when not due); prints a summary unless ``json_`` (the caller embeds it).
    """
    from rich.markup import escape

    from bastion.registry.refs import parse_ref
    from bastion.vulns.monitor import is_due, monitor_vulnerabilities

    name = parse_ref(model).name
    if not is_due(proj, name, every):
        return None
    doc: dict[str, Any] = monitor_vulnerabilities(proj, name, config=cfg)
    if json_:
        return doc
    check = doc["check"]
    console.print(f"Vulnerabilities: {len(check['versions'])} served version(s) of {name} checked against "
                  f"{check['advisories']:,} advisories, {len(check['affected'])} affected; "
                  f"{len(doc['rescans'])} re-scanned.", soft_wrap=True)
    for a in doc["alerts"]:
        tag = escape(f"[{a['severity']}] {a['rule']}: {a['message']}")
        console.print(f"[bold red]ALERT[/] {tag}", soft_wrap=True)
    for r in doc["rollbacks"]:
        if r.get("rolled_back"):
            console.print(f"[bold red]Rolled back[/] {r['model']}@{r['alias']} -> version {r['to_version']}")
        else:
            console.print(f"Not rolled back {r['model']}@{r['alias']}: {r['reason']}", soft_wrap=True)
    for e in doc["errors"]:
        console.print(f"[bold red]re-scan refused[/] {e}", soft_wrap=True)
    return doc


@labels_app.command("add")
def labels_add(
    name: str = typer.Argument(..., help="Model name."),
    file: Path = typer.Option(..., "--file", "-f", help="Parquet or CSV file with request ids and labels."),
    id_column: str = typer.Option("request_id", "--id-column", help="Column holding the request id."),
    label_column: str | None = typer.Option(None, "--label-column", help="Column holding the label."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Store delayed ground truth; `monitor run` joins it to logged predictions by request id."""
    from bastion.monitor.performance import add_labels

    proj = project()
    path, rows = add_labels(proj, name, file, id_column=id_column, label_column=label_column)
    doc = {"model": name, "rows": rows, "stored": str(path)}
    if json_:
        print_json(doc)
    else:
        console.print(f"Stored {rows:,} labels for {name} ({path.name}).")
