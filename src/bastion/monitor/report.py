"""Monitoring reports: one self-contained HTML file (Plotly inlined from the installed package, no
network needed to open it) and JSON for machines.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import jinja2

from bastion.errors import DataError

__all__ = ["MAX_PLOTS", "render_html", "render_json", "write_report"]

MAX_PLOTS = 60
_REF_COLOR, _CUR_COLOR = "#4c78a8", "#f58518"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _score(f: dict[str, Any]) -> float | None:
    from bastion.monitor.figures import drift_score

    test = (f.get("tests") or {}).get(f.get("verdict_test")) or {}
    return drift_score(basis=test.get("basis"), statistic=test.get("statistic"), threshold=f.get("threshold"),
                       p_value_adjusted=f.get("p_value_adjusted"))


def _fmtp(v: Any) -> str:
    if v is None:
        return "–"
    return "<1e-300" if v == 0 else f"{v:.3g}"


def _feature_figure(i: int, f: dict[str, Any]) -> dict[str, Any] | None:
    h = f.get("histogram") or {}
    title = f"{f['column']}{' — DRIFT' if f.get('drifted') else ''}"
    if h.get("type") == "numeric":
        edges = h["edges"]
        x = [(a + b) / 2 for a, b in pairwise(edges)]
        width = edges[1] - edges[0] if len(edges) > 1 else 1
        data = [
            {"type": "bar", "x": x, "y": h["reference"], "name": "reference", "marker": {"color": _REF_COLOR},
             "opacity": 0.6, "width": width},
            {"type": "bar", "x": x, "y": h["current"], "name": "current", "marker": {"color": _CUR_COLOR},
             "opacity": 0.6, "width": width},
        ]
    elif h.get("type") == "categorical":
        data = [
            {"type": "bar", "x": h["categories"], "y": h["reference"], "name": "reference",
             "marker": {"color": _REF_COLOR}},
            {"type": "bar", "x": h["categories"], "y": h["current"], "name": "current",
             "marker": {"color": _CUR_COLOR}},
        ]
    else:
        return None
    layout = {
        "title": {"text": title, "font": {"size": 13, "color": "#c62828" if f.get("drifted") else "#1f2933"}},
        "barmode": "overlay" if h["type"] == "numeric" else "group",
        "margin": {"l": 40, "r": 10, "t": 36, "b": 40},
        "legend": {"orientation": "h", "y": -0.2},
        "yaxis": {"title": {"text": "share"}},
    }
    return {"id": f"dist-{i}", "data": data, "layout": layout}


def _performance_figure(doc: dict[str, Any]) -> dict[str, Any] | None:
    points: dict[str, list[tuple[str, float, bool]]] = {}
    windows = [w for h in doc.get("history") or [] for w in h.get("performance") or []]
    windows += doc.get("performance") or []
    seen = set()
    for w in windows:
        key = (w.get("start"), w.get("estimated"))
        if key in seen or not w.get("start"):
            continue
        seen.add(key)
        for m, v in (w.get("metrics") or {}).items():
            if v is not None:
                points.setdefault(m, []).append((w["start"], v, bool(w.get("estimated"))))
    if not points:
        return None
    data = []
    for m, pts in sorted(points.items()):
        pts.sort()
        data.append({
            "type": "scatter", "mode": "lines+markers", "name": m,
            "x": [p[0] for p in pts], "y": [p[1] for p in pts],
            "marker": {"symbol": ["circle-open" if p[2] else "circle" for p in pts], "size": 8},
            "text": ["estimated" if p[2] else "measured" for p in pts],
        })
    layout = {"margin": {"l": 50, "r": 10, "t": 20, "b": 40}, "yaxis": {"title": {"text": "metric"}},
              "annotations": [{"text": "open markers: estimated without labels", "showarrow": False,
                               "xref": "paper", "yref": "paper", "x": 1, "y": 1.08, "xanchor": "right",
                               "font": {"size": 11, "color": "#627d98"}}]}
    return {"id": "performance-plot", "data": data, "layout": layout}


def _history_figure(doc: dict[str, Any]) -> dict[str, Any] | None:
    hist = [h for h in doc.get("history") or [] if h.get("window_end")]
    if len(hist) < 2:
        return None
    x = [h["window_end"] for h in hist]
    data = [
        {"type": "scatter", "mode": "lines+markers", "name": "share of drifted features", "x": x,
         "y": [h.get("drift_share") or 0 for h in hist]},
        {"type": "scatter", "mode": "lines+markers", "name": "anomalous input share", "x": x,
         "y": [(h.get("anomaly") or {}).get("share") for h in hist]},
    ]
    return {"id": "history-plot", "data": data,
            "layout": {"margin": {"l": 50, "r": 10, "t": 20, "b": 40}, "yaxis": {"range": [0, 1]}}}


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def render_html(result: Any) -> str:
    """The report as one self-contained HTML document (``result``: a MonitorResult or its dict)."""
    doc = result.to_dict() if hasattr(result, "to_dict") else result
    drift = doc.get("drift") or {}
    if "features" not in drift:
        raise DataError("render_html needs a monitoring result with a 'drift' section.")
    feats = sorted(drift["features"], key=lambda f: (not f.get("drifted"), f.get("prediction", False)))
    plots = [p for p in (_feature_figure(i, f) for i, f in enumerate(feats[:MAX_PLOTS])) if p]
    perf_plot = _performance_figure(doc)
    history_plot = _history_figure(doc)
    figures = plots + [p for p in (perf_plot, history_plot) if p]
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: resources.files("bastion.monitor").joinpath("templates").joinpath(name).read_text("utf-8")
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    tpl = env.get_template("report.html.j2")
    figures_json = json.dumps(figures, default=str).replace("</", "<\\/")
    return tpl.render(
        doc=doc,
        drift=drift,
        n_features=sum(1 for f in drift["features"] if not f.get("prediction")),
        plots=plots,
        hidden_plots=max(0, len(feats) - MAX_PLOTS),
        perf_plot=perf_plot,
        history_plot=history_plot,
        figures_json=figures_json,
        plotly_js=_plotly_js().replace("</script", "<\\/script"),
        fmt=_fmt,
        fmtp=_fmtp,
        score=_score,
    )


def render_json(result: Any) -> str:
    doc = result.to_dict() if hasattr(result, "to_dict") else result
    return json.dumps(doc, indent=2, sort_keys=True, default=str)


def write_report(result: Any, path: str | Path) -> Path:
    """Write HTML (``.html``/``.htm``) or JSON (``.json``) by the file's suffix; atomic."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".html", ".htm"):
        text = render_html(result)
    elif suffix == ".json":
        text = render_json(result)
    else:
        raise DataError(f"Report path must end in .html or .json; got {p.name!r}.")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name("." + p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p
