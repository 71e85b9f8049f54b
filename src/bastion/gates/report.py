"""Gate reports: JSON, and a self-contained HTML page (plotly.js inlined, no CDN) with per-group plots."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

__all__ = ["fairness_figures", "render_html", "render_json", "version_metrics", "write_report"]

_RATES = ("selection_rate", "tpr", "fpr", "fnr", "accuracy")


def version_metrics(
    project: Any, mv: Any, gate: dict[str, Any] | None = None
) -> tuple[dict[str, float], str]:
    """A version's metrics and where they come from: ``"logged"`` at registration, else ``"gate"`` (what its
    latest gate measured on the holdout data: a mitigated version is registered without metrics of its own),
    else ``({}, "")``."""
    if mv.metrics:
        return dict(mv.metrics), "logged"
    if gate is None:
        docs = project.attachments(mv.ref, "gate")
        gate = docs[-1] if docs else None
    for check in (gate or {}).get("checks", []):
        if check.get("name") == "performance":
            measured = {k: float(v) for k, v in (check.get("measured") or {}).items()
                        if isinstance(v, int | float) and not isinstance(v, bool)}
            if measured:
                return measured, "gate"
    return {}, ""


def render_json(result: Any) -> str:
    """The gate result as indented JSON (``schema_version`` 1)."""
    doc = result.to_dict() if hasattr(result, "to_dict") else result
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def fairness_figures(result_doc: dict[str, Any]) -> list[Any]:
    """One grouped bar chart (rate per group) per grouping of the fairness check."""
    import plotly.graph_objects as go

    figs = []
    for check in result_doc.get("checks", []):
        if check["name"] != "fairness":
            continue
        for grouping in check.get("evidence", {}).get("groupings", []):
            labels = [" / ".join(str(v) for v in g["group"].values()) for g in grouping["groups"]]
            fig = go.Figure()
            for rate in _RATES:
                fig.add_bar(name=rate, x=labels, y=[g[rate] for g in grouping["groups"]])
            fig.update_layout(
                title=f"Rates per group: {grouping['name']}", barmode="group", height=380,
                margin={"l": 40, "r": 20, "t": 50, "b": 80}, yaxis={"range": [0, 1]},
            )
            figs.append(fig)
    return figs


def render_html(result: Any) -> str:
    """A single HTML file: summary, check table, fairness tables and plots (works offline)."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    doc = result.to_dict() if hasattr(result, "to_dict") else result
    e = html.escape
    status = "PASSED" if doc["passed"] else "FAILED"
    rows = []
    for c in doc["checks"]:
        verdict = "pass" if c["passed"] else "fail"
        rows.append(
            f"<tr class='{verdict}'><td>{e(c['name'])}</td><td>{'yes' if c['required'] else 'no'}</td>"
            f"<td>{e(_fmt(c['measured']))}</td><td>{e(_fmt(c['threshold']))}</td><td>{verdict}</td>"
            f"<td>{e(c.get('error') or '')}</td></tr>"
        )
    tables = []
    for c in doc["checks"]:
        if c["name"] != "fairness":
            continue
        for g in c.get("evidence", {}).get("groupings", []):
            head = "".join(f"<th>{e(a)}</th>" for a in g["attributes"])
            body = "".join(
                "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in grp["group"].values())
                + f"<td>{grp['count']}</td>" + "".join(f"<td>{_fmt(grp[r])}</td>" for r in _RATES)
                + f"<td>{'yes' if grp['small'] else ''}</td></tr>"
                for grp in g["groups"]
            )
            tables.append(
                f"<h3>{e(g['name'])}</h3><table><tr>{head}<th>count</th>"
                + "".join(f"<th>{r}</th>" for r in _RATES) + f"<th>small</th></tr>{body}</table>"
            )
    plots = "".join(
        pio.to_html(f, include_plotlyjs=False, full_html=False, config={"displaylogo": False})
        for f in fairness_figures(doc)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Bastion gate report: {e(doc['ref'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}}tr.fail td{{background:#fde8e8}}
tr.pass td{{background:#eafbea}}.status{{font-size:1.4em;font-weight:bold}}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head><body>
<h1>Gate report: {e(doc['ref'])}</h1>
<p class="status">{status}</p>
<p>Policy {e(doc['policy']['name'])} v{doc['policy']['version']} ({e(doc['policy']['digest'])}); model digest
{e(doc['model_digest'])}; evaluated {e(str(doc['datasets'].get('evaluation', {}).get('rows')))} rows; run by
{e(doc['actor'])} at {e(doc['finished_at'])}; attestation {e(str(doc.get('attestation', {}).get('statement_digest')))}
(signed: {e(str(doc.get('attestation', {}).get('signed')))}).</p>
<h2>Checks</h2><table><tr><th>check</th><th>required</th><th>measured</th><th>threshold</th><th>result</th>
<th>error</th></tr>{''.join(rows)}</table>
<h2>Fairness per group</h2>{''.join(tables) or '<p>No fairness check in this policy.</p>'}
{plots}
</body></html>
"""


def write_report(result: Any, *, json_path: str | Path | None = None, html_path: str | Path | None = None) -> None:
    """Write the JSON and/or HTML report files."""
    if json_path:
        Path(json_path).write_text(render_json(result), encoding="utf-8")
    if html_path:
        Path(html_path).write_text(render_html(result), encoding="utf-8")
