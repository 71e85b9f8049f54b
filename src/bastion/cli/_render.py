"""Rich renderings of registry records, shared by the model and data commands."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.tree import Tree

from bastion.registry.records import DatasetVersion, ModelVersion


def short(value: str, keep: int) -> str:
    """``value`` cut to ``keep`` characters with an ellipsis in a terminal; whole in a pipe or a log."""
    from bastion.cli._common import console

    if not console.is_terminal or len(value) <= keep:
        return value
    return value[:keep] + "…"


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(d.items()))


def models_table(rows: list[ModelVersion]) -> Table:
    t = Table(title="Model versions")
    for col in ("ref", "aliases", "flavor", "scan", "metrics", "datasets", "created", "by"):
        t.add_column(col)
    for m in rows:
        t.add_row(
            m.ref + (" (deleted)" if m.deleted else ""),
            ",".join(m.aliases),
            m.flavor,
            m.scan_status,
            _kv(m.metrics),
            ",".join(m.datasets),
            m.created_at[:19],
            m.created_by,
        )
    return t


def datasets_table(rows: list[DatasetVersion]) -> Table:
    t = Table(title="Dataset versions")
    for col in ("ref", "format", "rows", "columns", "digest", "derived from", "created", "by"):
        t.add_column(col)
    for d in rows:
        t.add_row(
            d.ref + (" (deleted)" if d.deleted else ""),
            d.fmt,
            str(d.rows),
            str(len(d.schema)),
            short(d.digest, 19),
            ",".join(short(x, 19) for x in d.derived_from),
            d.created_at[:19],
            d.created_by,
        )
    return t


def model_detail(
    m: ModelVersion,
    scan: dict[str, Any] | None,
    flavor: dict[str, Any] | None = None,
    measured: dict[str, float] | None = None,
) -> Table:
    t = Table(title=f"Model {m.ref}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    rows = [
        ("digest", m.digest),
        ("artifact", f"{m.artifact_name} ({m.artifact_kind}, {m.size} bytes)"),
        ("framework", m.framework),
        ("flavor", m.flavor),
        ("aliases", ", ".join(m.aliases) or "-"),
        ("metrics", _kv(m.metrics) or (f"{_kv(measured)} (measured by its gate)" if measured else "-")),
        ("params", _kv(m.params) or "-"),
        ("tags", _kv(m.tags) or "-"),
        ("datasets", ", ".join(m.datasets) or "-"),
        ("parent", m.parent or "-"),
        ("code", _kv(m.code) or "-"),
        ("environment", m.environment_digest or "-"),
        ("description", m.description or "-"),
        ("created", f"{m.created_at} by {m.created_by}"),
        ("scan", m.scan_status),
    ]
    if flavor:
        from bastion.flavors import inputs_summary, is_servable, signature_summary

        rows[3] = ("flavor", f"{m.flavor} ({'gated and served' if is_servable(m.flavor) else 'stored only'}"
                             f"{', ' + str(flavor.get('task')) if flavor.get('task') else ''})")
        rows.insert(4, ("input signature", signature_summary(flavor.get("signature"))))
        rows.insert(5, ("requirements", ", ".join(flavor.get("requirements") or []) or "-"))
        if flavor.get("inputs"):
            rows.insert(5, ("request fields", inputs_summary(flavor.get("inputs"))))
        for note in flavor.get("notes") or []:
            rows.append(("note", str(note)))
    if m.deleted:
        rows.append(("deleted", str(m.deleted_at)))
    if scan:
        findings = scan.get("findings", [])
        rows.append(("scan findings", f"{len(findings)} (max severity {scan.get('max_severity') or 'none'})"))
        for f in findings[:10]:
            rows.append(("", f"{f.get('severity')} {f.get('rule_id')} {f.get('construct')}: {f.get('message')}"))
    for k, v in rows:
        t.add_row(k, str(v))
    return t


def dataset_detail(d: DatasetVersion) -> Table:
    t = Table(title=f"Dataset {d.ref}: {d.rows} rows, {d.fmt}, {d.digest}")
    for col in ("column", "type", "nulls", "min", "max", "mean", "distinct"):
        t.add_column(col)
    for f in d.schema:
        s = d.stats.get(f["name"], {})
        mean = s.get("mean")
        t.add_row(
            f["name"],
            f["type"],
            str(s.get("nulls", "")),
            str(s.get("min", "")),
            str(s.get("max", "")),
            f"{mean:.4g}" if isinstance(mean, float) else "",
            str(s.get("distinct", "")),
        )
    return t


def lineage_tree(node: dict[str, Any], tree: Tree | None = None) -> Tree:
    label = {
        "model": f"[bold cyan]model[/] {node.get('ref')}"
        + (f" @{','.join(node['aliases'])}" if node.get("aliases") else ""),
        "dataset": f"[green]dataset[/] {node.get('ref')} ({node.get('rows')} rows)",
        "source": f"[yellow]source[/] {short(str(node.get('digest')), 23)}",
    }[node["kind"]]
    if node.get("deleted"):
        label += " [red](deleted)[/]"
    branch = Tree(label) if tree is None else tree.add(label)
    for child in node.get("children", []):
        lineage_tree(child, branch)
    return branch
