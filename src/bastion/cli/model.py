"""`bastion model …`: register, list, show, diff, lineage, promote, rollback, delete (plus scan, sign,
verify and card from their own modules)."""

from __future__ import annotations

import typer

from bastion.cli import _render, model_card, model_rescan, model_scan, model_sign
from bastion.cli._common import console, print_json, progress_bar, project
from bastion.cli._render import short
from bastion.errors import DataError, RegistryError

app = typer.Typer(help="Version, inspect, promote and roll back models.", no_args_is_help=True)


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise RegistryError(f"{what} must be KEY=VALUE; got {item!r}.")
        k, _, v = item.partition("=")
        if not k:
            raise RegistryError(f"{what} must be KEY=VALUE with a non-empty key; got {item!r}.")
        out[k] = v
    return out


def _value(v: str) -> object:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(v.lower(), v)


def _feature_names(value: str | None) -> list[str] | None:
    """``a,b,c`` or ``@FILE`` (a JSON list of strings, or one name per line)."""
    if value is None:
        return None
    if not value.startswith("@"):
        return [n.strip() for n in value.split(",")]
    import json
    from pathlib import Path

    path = Path(value[1:])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"Cannot read the feature names file {path}: {type(e).__name__}.") from e
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not a JSON list of names: {e.msg} at line {e.lineno}.") from e
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"{path} must hold a JSON list of strings (the feature names in order).")
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]


@app.command("register")
def register(
    path: str = typer.Argument(..., help="Model file or folder."),
    name: str = typer.Option(..., "--name", "-n", help="Model name."),
    dataset: list[str] = typer.Option(None, "--dataset", "-d", help="Training dataset NAME:VERSION (repeatable)."),
    metric: list[str] = typer.Option(None, "--metric", "-m", help="KEY=NUMBER (repeatable)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="KEY=VALUE (repeatable)."),
    tag: list[str] = typer.Option(None, "--tag", "-t", help="KEY=VALUE (repeatable)."),
    description: str = typer.Option("", "--description"),
    parent: str = typer.Option(None, "--parent", help="Version this one was derived from."),
    allow_finding: list[str] = typer.Option(None, "--allow-finding", help="Scanner finding id to accept."),
    reason: str = typer.Option(None, "--reason", help="Why the allowed findings are acceptable (audited)."),
    flavor: str = typer.Option(
        None, "--flavor", help="Force the flavor (onnx, xgboost, lightgbm, skops, joblib, pickle); 'file' stores "
        "an opaque artifact that is never gated or served. Detected from the content when omitted."),
    convert: str = typer.Option(None, "--convert", help="Re-save a joblib/pickle model with skops ('skops')."),
    trust: list[str] = typer.Option(None, "--trust", help="A reviewed skops/pickle type to allow (repeatable)."),
    feature_names: str = typer.Option(
        None, "--feature-names", help="Without --dataset: the model's input names in order, comma-separated, or "
        "@FILE (a JSON list or one name per line). Default: the names the model file carries, else f0..fN-1."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Scan a model artifact, check it loads as its flavor and predicts on its dataset (or, without one, on a
    batch generated from its input signature), register it."""
    allowed = {f: reason or "" for f in allow_finding or []}
    if allowed and not (reason or "").strip():
        raise RegistryError("--allow-finding needs --reason saying why the finding is acceptable.")
    metrics = {k: _value(v) for k, v in _pairs(metric, "--metric").items()}
    params = {k: _value(v) for k, v in _pairs(param, "--param").items()}
    with progress_bar("Storing artifact") as bar:
        mv = project().log_model(
            path,
            name=name,
            datasets=list(dataset or []),
            metrics=metrics,
            params=params,
            tags=_pairs(tag, "--tag"),
            description=description,
            parent=parent,
            allow_findings=allowed,
            progress=bar,
            flavor=flavor,
            convert=convert,
            trusted=list(trust or []) or None,
            feature_names=_feature_names(feature_names),
        )
    if json_out:
        print_json(mv.to_dict())
    else:
        console.print(f"Registered [bold]{mv.ref}[/] ({short(mv.digest, 19)}, flavor: {mv.flavor}, "
                      f"scan: {mv.scan_status}).")
        if mv.flavor in ("pickle", "joblib"):
            console.print("This is a pickle: it is loaded only through the restricted unpickler. Register it with "
                          "--convert skops to store a skops copy instead.")


@app.command("list")
def list_(
    name: str = typer.Argument(None, help="Only versions of this model."),
    all_: bool = typer.Option(False, "--all", help="Include deleted versions."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """List model versions."""
    rows = project().list_models(name, include_deleted=all_)
    if json_out:
        print_json([m.to_dict() for m in rows])
    else:
        console.print(_render.models_table(rows))


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME:VERSION or NAME@ALIAS."), json_out: bool = typer.Option(False, "--json")
) -> None:
    """Show one model version: metrics, params, lineage, code, environment, scan."""
    p = project()
    mv = p.get_model(ref, include_deleted=True)
    scans = p.attachments(mv.ref, "scan")
    scan = scans[-1] if scans else None
    flavors = p.attachments(mv.ref, "flavor")
    flavor_doc = flavors[-1] if flavors else None
    from bastion.gates.report import version_metrics
    from bastion.vulns.status import version_status

    vulns = version_status(p, mv.name, mv.version)
    metrics, source = version_metrics(p, mv)
    if json_out:
        print_json({**mv.to_dict(), "scan": scan, "flavor_info": flavor_doc, "vulnerabilities": vulns,
                    "measured_metrics": {"metrics": metrics, "source": source or None}})
    else:
        console.print(_render.model_detail(mv, scan, flavor_doc, metrics if source == "gate" else None))
        when = f" (checked {vulns['checked_at']})" if vulns["checked_at"] else " (run `bastion vulns check`)"
        console.print(f"vulnerabilities: {vulns['status']}{when}", soft_wrap=True, highlight=False)
        for a in vulns["advisories"]:
            fixed = f", fixed in {a['fixed']}" if a["fixed"] else ""
            console.print(f"  {a['id']} ({', '.join(a['aliases']) or 'no aliases'}): {a['package']} {a['installed']}, "
                          f"severity {a['severity']}{fixed}", soft_wrap=True, highlight=False)


@app.command("diff")
def diff(a: str, b: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Compare two versions: params, metrics, data lineage and digest."""
    d = project().diff_models(a, b)
    if json_out:
        print_json(d)
        return
    from rich.table import Table

    t = Table(title=f"{d['a']} vs {d['b']}")
    for col in ("what", "key", d["a"], d["b"]):
        t.add_column(col)
    for section in ("params", "metrics", "tags"):
        for k, v in d[section].items():
            t.add_row(section, k, str(v["a"]), str(v["b"]))
    t.add_row("datasets", "", ",".join(d["datasets"]["a"]), ",".join(d["datasets"]["b"]))
    t.add_row("digest", "same" if d["digest"]["same"] else "differs", d["digest"]["a"][:19], d["digest"]["b"][:19])
    console.print(t)


@app.command("lineage")
def lineage(ref: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Tree from a model version down to the datasets (and raw sources) it came from."""
    node = project().lineage(ref)
    if json_out:
        print_json(node)
    else:
        console.print(_render.lineage_tree(node))


@app.command("promote")
def promote(
    ref: str,
    alias: str = typer.Option(..., "--alias", "-a"),
    force: bool = typer.Option(False, "--force", help="Override refusing rules (needs --reason; audited)."),
    reason: str = typer.Option(None, "--reason"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Point an alias at a version, if the promotion rules allow it."""
    if force and not (reason or "").strip():
        raise RegistryError("--force needs --reason saying why the rules are overridden.")
    mv = project().promote(ref, alias=alias, force_reason=reason if force else None)
    if json_out:
        print_json(mv.to_dict())
    else:
        console.print(f"[bold]{mv.name}@{alias}[/] -> {mv.ref}")


@app.command("rollback")
def rollback(
    name: str,
    alias: str = typer.Option(..., "--alias", "-a"),
    reason: str = typer.Option("", "--reason"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Move an alias back to the version it pointed at before its last promotion."""
    mv = project().rollback(name, alias=alias, reason=reason)
    if json_out:
        print_json(mv.to_dict())
    else:
        console.print(f"[bold]{name}@{alias}[/] rolled back -> {mv.ref}")


@app.command("delete")
def delete(
    ref: str, reason: str = typer.Option("", "--reason"), json_out: bool = typer.Option(False, "--json")
) -> None:
    """Soft-delete a version (kept until `bastion gc`; cannot be promoted)."""
    mv = project().delete_model(ref, reason=reason)
    if json_out:
        print_json(mv.to_dict())
    else:
        console.print(f"Deleted {mv.ref} (artifacts kept until 'bastion gc').")


model_scan.register(app)
model_sign.register(app)
model_card.register(app)
model_rescan.register(app)
