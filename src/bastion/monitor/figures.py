"""Plotly figure data for monitoring results, shared by the HTML report and the dashboard: one comparable
drift score per feature and reference-vs-current distributions. Plain dicts in, plain dicts out.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

__all__ = ["SCORE_EXPLAINED", "drift_score", "feature_figure", "score_figure", "time_axis"]

REF_COLOR, CUR_COLOR, DRIFT_COLOR, OK_COLOR = "#4c78a8", "#f58518", "#c62828", "#4c78a8"
_P_FLOOR = 1e-300
SCORE_EXPLAINED = ("Drift score: statistic ÷ threshold for effect sizes (Wasserstein, Jensen-Shannon, PSI); "
                   "−log10(adjusted p) ÷ −log10(α) for tests (KS, χ²). Above 1 means drift, whatever the test.")


def drift_score(*, basis: str | None, statistic: float | None, threshold: float | None,
                p_value_adjusted: float | None) -> float | None:
    """One number comparable across tests: 1.0 is the feature's threshold, above 1 is drift.

    Effect sizes drift when ``statistic > threshold``: the score is ``statistic / threshold``. Tests drift
    when the adjusted p-value is below ``threshold`` (alpha): the score is ``-log10(p) / -log10(alpha)``.
    """
    if threshold is None or not threshold > 0:
        return None
    if basis == "p_value":
        if p_value_adjusted is None or not 0 < threshold < 1:
            return None
        return -math.log10(max(float(p_value_adjusted), _P_FLOOR)) / -math.log10(threshold)
    if statistic is None or not math.isfinite(statistic):
        return None
    return float(statistic) / threshold


def score_figure(features: list[dict[str, Any]], *, title: str = "Drift score per feature") -> dict[str, Any]:
    """Bars of each feature's score (highest first) with the threshold line at 1."""
    rows = sorted((f for f in features if f.get("score") is not None), key=lambda f: -float(f["score"]))
    names = [str(f["column"]) for f in rows]
    data = [{
        "type": "bar", "x": names, "y": [round(float(f["score"]), 4) for f in rows],
        "marker": {"color": [DRIFT_COLOR if f.get("drifted") else OK_COLOR for f in rows]},
        "text": [f"{f.get('verdict_test')}: statistic {_g(f.get('statistic'))}, p {_g(f.get('p_value_adjusted'))}"
                 for f in rows],
        "hovertemplate": "%{x}: score %{y:.3g}<br>%{text}<extra></extra>", "name": "drift score",
    }]
    layout = {
        "title": {"text": title}, "height": 340, "margin": {"l": 50, "r": 10, "t": 40, "b": 90},
        "yaxis": {"title": {"text": "score (1 = threshold)"}, "rangemode": "tozero"},
        "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 1, "y1": 1,
                    "line": {"color": DRIFT_COLOR, "dash": "dash", "width": 2}}],
        "annotations": [{"text": "threshold", "xref": "paper", "x": 1, "y": 1, "xanchor": "right",
                         "yanchor": "bottom", "showarrow": False, "font": {"color": DRIFT_COLOR, "size": 11}}],
        "showlegend": False,
    }
    return {"data": data, "layout": layout}


def feature_figure(f: dict[str, Any]) -> dict[str, Any] | None:
    """Reference vs current distribution of one feature (shares per bin or category), or None."""
    h = f.get("histogram") or {}
    title = f"{f['column']}{' — DRIFT' if f.get('drifted') else ''}"
    if h.get("type") == "numeric" and len(h.get("edges") or []) > 1:
        edges = h["edges"]
        x = [(a + b) / 2 for a, b in pairwise(edges)]
        width = edges[1] - edges[0]
        data = [
            {"type": "bar", "x": x, "y": h["reference"], "name": "reference", "marker": {"color": REF_COLOR},
             "opacity": 0.6, "width": width},
            {"type": "bar", "x": x, "y": h["current"], "name": "current", "marker": {"color": CUR_COLOR},
             "opacity": 0.6, "width": width},
        ]
    elif h.get("type") == "categorical" and h.get("categories"):
        data = [
            {"type": "bar", "x": h["categories"], "y": h["reference"], "name": "reference",
             "marker": {"color": REF_COLOR}},
            {"type": "bar", "x": h["categories"], "y": h["current"], "name": "current",
             "marker": {"color": CUR_COLOR}},
        ]
    else:
        return None
    layout = {
        "title": {"text": title, "font": {"size": 13, "color": DRIFT_COLOR if f.get("drifted") else "#1f2933"}},
        "barmode": "overlay" if h["type"] == "numeric" else "group", "height": 260,
        "margin": {"l": 40, "r": 10, "t": 36, "b": 40},
        "legend": {"orientation": "h", "y": -0.25},
        "yaxis": {"title": {"text": "share"}},
    }
    return {"data": data, "layout": layout}


def time_axis(xs: list[Any]) -> dict[str, Any]:
    """An x axis for timestamps: with fewer than two distinct points, a category axis (no microsecond ticks)."""
    if len({x for x in xs if x is not None}) < 2:
        return {"type": "category", "title": {"text": "window end"}}
    return {"type": "date", "title": {"text": "window end"}}


def compact_histogram(h: dict[str, Any] | None) -> dict[str, Any] | None:
    """A histogram with shares rounded to 4 significant digits (kept in every stored window)."""
    if not h:
        return None
    out = dict(h)
    for k in ("reference", "current", "edges"):
        if k in out and isinstance(out[k], list):
            out[k] = [float(f"{float(v):.4g}") for v in out[k]]
    return out


def _g(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "<1e-300" if v == 0 else f"{v:.3g}"
    return str(v)
