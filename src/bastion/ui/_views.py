"""What each dashboard page shows, gathered from the project through the library's public functions.

Pure data in, plain dicts out: the templates format, these functions decide nothing about HTML.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle
    from bastion.registry.records import ModelVersion

__all__ = [
    "alias_choices",
    "audit_page",
    "dataset_page",
    "drift_status",
    "inventory",
    "monitoring_page",
    "promotion_decision",
    "version_page",
]

log = logging.getLogger("bastion.ui")
_RATES = ("selection_rate", "tpr", "fpr", "fnr", "accuracy")


def _last(project: ProjectHandle, ref: str, kind: str, subject_kind: str = "model") -> dict[str, Any] | None:
    docs = project.attachments(ref, kind, subject_kind=subject_kind)
    return docs[-1] if docs else None


def drift_status(window: dict[str, Any] | None) -> tuple[str, str]:
    """(``green``|``amber``|``red``|``none``, why) from the latest monitoring window."""
    if not window:
        return "none", "no monitoring window yet"
    severities = {a.get("severity") for a in window.get("alerts") or []}
    drifted = window.get("drifted_features") or []
    if "critical" in severities or window.get("dataset_drift"):
        return "red", f"{len(drifted)} drifted feature(s); alerts: {len(window.get('alerts') or [])}"
    anomaly = window.get("anomaly") or {}
    if severities or drifted or window.get("prediction_drift") or anomaly.get("exceeded"):
        return "amber", f"{len(drifted)} drifted feature(s); alerts: {len(window.get('alerts') or [])}"
    return "green", "no drift, no alerts"


def _serving(summary: dict[str, Any]) -> int:
    by_alias = dict(summary["aliases"])
    if "production" in by_alias:
        return int(by_alias["production"])
    if by_alias:
        return int(by_alias[sorted(by_alias)[0]])
    return int(summary["latest"])


def inventory(project: ProjectHandle) -> list[dict[str, Any]]:
    """One row per model: aliases and their versions, and the status of the version that serves."""
    from bastion.ui._queries import latest_documents, latest_documents_by_model, model_summaries, scan_statuses

    summaries = model_summaries(project)
    serving = [(s["name"], _serving(s)) for s in summaries]
    docs = latest_documents(project, serving, ("gate", "signature"))
    windows = latest_documents_by_model(project, "monitor_window")
    scans = scan_statuses(project, serving)
    vulns = _alias_vulns(project)
    rows = []
    for s, (name, version) in zip(summaries, serving, strict=True):
        gate = docs.get((name, version, "gate"))
        signature = docs.get((name, version, "signature"))
        # Monitoring follows whatever version served last, which may no longer be behind an alias.
        window_version, window = windows.get(name, (None, None))
        status, why = drift_status(window)
        alerts = (window or {}).get("alerts") or []
        rows.append({
            **s,
            "serving_version": version,
            "serving_ref": f"{name}:{version}",
            "gate": "none" if gate is None else ("passed" if gate.get("passed") else "failed"),
            "scan": scans.get((name, version), "unscanned"),
            "signature": "signed" if signature else "unsigned",
            "signer": ((signature or {}).get("key") or {}).get("name", ""),
            "drift": status,
            "drift_why": why,
            "last_alert": alerts[-1] if alerts else None,
            "window_end": (window or {}).get("window_end"),
            "window_version": window_version,
            "vulns": vulns.get(name, []),
        })
    return rows


def _alias_vulns(project: ProjectHandle) -> dict[str, list[dict[str, Any]]]:
    """Per model: each alias's vulnerability status (clean / affected / rescan-finding / unchecked)."""
    from bastion.vulns.status import alias_statuses

    out: dict[str, list[dict[str, Any]]] = {}
    for row in alias_statuses(project):
        out.setdefault(row["name"], []).append(row)
    return out


def _fairness(gate: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for check in (gate or {}).get("checks", []):
        if check.get("name") != "fairness":
            continue
        for g in (check.get("evidence") or {}).get("groupings", []):
            labels = [" / ".join(str(v) for v in grp["group"].values()) for grp in g["groups"]]
            figure = {
                "data": [
                    {"type": "bar", "name": r, "x": labels, "y": [grp.get(r) for grp in g["groups"]]} for r in _RATES
                ],
                "layout": {"title": {"text": f"Rates per group: {g['name']}"}, "barmode": "group", "height": 340,
                           "margin": {"l": 40, "r": 10, "t": 40, "b": 80}, "yaxis": {"range": [0, 1]}},
            }
            out.append({"name": g["name"], "groups": g["groups"], "labels": labels, "rates": _RATES,
                        "disparities": g.get("disparities") or {}, "small": g.get("small_groups") or [],
                        "figure": figure})
    return out


def version_page(project: ProjectHandle, ref: str, *, root_path: str = "") -> dict[str, Any]:
    """Everything the model-version page shows (signature verified now, the artifact re-hashed)."""
    from bastion.ui._lineage import lineage_svg

    mv = project.get_model(ref, include_deleted=True)
    gate = _last(project, mv.ref, "gate")
    scan = _last(project, mv.ref, "scan")
    try:
        from bastion.gates.signatures import verify_version

        signature = verify_version(project, mv.ref).to_dict()
    except (ImportError, BastionError) as e:
        signature = {"valid": False, "reason": str(e)}
    sig_doc = _last(project, mv.ref, "signature")
    if sig_doc:
        signature["key"] = {k: (sig_doc.get("key") or {}).get(k) for k in ("name", "fingerprint", "mode")}
        signature["signed_by"] = sig_doc.get("signed_by")
        signature["files"] = sig_doc.get("files")
    attestations = [
        {"type": d.get("type"), "statement_digest": d.get("statement_digest"), "signed": d.get("bundle") is not None,
         "predicate_type": d.get("predicate_type")}
        for d in project.attachments(mv.ref, "attestation")
    ]
    try:
        from bastion.gates.card import render_markdown

        card = render_markdown(project, mv.ref)
    except (ImportError, BastionError) as e:
        card = f"(model card unavailable: {e})"
    versions = sorted(project.list_models(mv.name), key=lambda m: m.version)
    metrics, metrics_source = _metrics_of(project, mv, gate)
    return {
        "mv": mv,
        "metrics": metrics,
        "metrics_source": metrics_source,
        "metrics_figure": _metrics_across_versions(project, versions[-50:], current=mv.version),
        "versions": [v.version for v in versions],
        "lineage_svg": lineage_svg(project.lineage(mv.ref), root_path=root_path),
        "gate": gate,
        "fairness": _fairness(gate),
        "scan": scan,
        "signature": signature,
        "attestations": attestations,
        "card": card,
        "has_monitoring": bool(project.attachments(mv.ref, "monitor_window")),
        "vulnerabilities": _version_vulns(project, mv.name, mv.version),
        "flavor": _flavor(project, mv),
    }


def _flavor(project: ProjectHandle, mv: ModelVersion) -> dict[str, Any]:
    """Flavor, framework, requirements and input signature recorded at registration (for the version page)."""
    from bastion.flavors import inputs_summary, is_servable, signature_summary

    doc = _last(project, mv.ref, "flavor") or {}
    return {
        "servable": is_servable(mv.flavor),
        "task": doc.get("task"),
        "requirements": list(doc.get("requirements") or []),
        "signature": signature_summary(doc.get("signature")) if doc else "not recorded",
        "input_columns": doc.get("input_columns"),
        "inputs": inputs_summary(doc.get("inputs")),
    }


def _metrics_of(project: ProjectHandle, mv: Any, gate: dict[str, Any] | None = None) -> tuple[dict[str, float], str]:
    from bastion.gates.report import version_metrics

    return version_metrics(project, mv, gate)


def _metrics_across_versions(project: ProjectHandle, versions: list[Any], *, current: int) -> dict[str, Any] | None:
    """One line per metric over the model's versions (open markers: measured by the gate, not logged)."""
    points: dict[str, list[tuple[str, float, str]]] = {}
    for v in versions:
        metrics, source = _metrics_of(project, v)
        for k, value in metrics.items():
            points.setdefault(k, []).append((f"v{v.version}", value, source))
    if not points:
        return None
    data = [{"type": "scatter", "mode": "lines+markers", "name": k, "x": [p[0] for p in pts],
             "y": [p[1] for p in pts], "text": [f"{p[2]} metric" for p in pts],
             "marker": {"size": 9, "symbol": ["circle-open" if p[2] == "gate" else "circle" for p in pts]}}
            for k, pts in sorted(points.items())]
    return {"data": data, "layout": {
        "title": {"text": "Metrics across versions"}, "height": 320, "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
        "xaxis": {"type": "category", "title": {"text": "version"}},
        "shapes": [{"type": "line", "x0": f"v{current}", "x1": f"v{current}", "yref": "paper", "y0": 0, "y1": 1,
                    "line": {"color": "#9fb3c8", "dash": "dot"}}],
        "annotations": [{"text": "open markers: measured by the gate", "showarrow": False, "xref": "paper",
                         "yref": "paper", "x": 1, "y": 1.08, "xanchor": "right", "font": {"size": 11}}]}}


def _version_vulns(project: ProjectHandle, name: str, version: int) -> dict[str, Any]:
    from bastion.vulns.status import version_status

    return version_status(project, name, version)


def alias_choices(project: ProjectHandle, name: str) -> list[str]:
    """Aliases worth offering for promotion: the policy's, the model's current ones, staging and production."""
    found = {"staging", "production"}
    for mv in project.list_models(name):
        found.update(mv.aliases)
    try:
        from bastion.gates.policy import find_project_policy, load_policy

        path = find_project_policy(project)
        if path is not None:
            found.update(load_policy(path).aliases)
    except (ImportError, BastionError):
        pass
    return sorted(found)


def promotion_decision(project: ProjectHandle, ref: str, alias: str) -> dict[str, Any]:
    """Would the promotion rules allow ``ref`` to take ``alias`` now? (the trust evaluator promote runs)."""
    from bastion.trust import evaluate

    report = evaluate(project, ref, alias, purpose="promote")
    return {"allowed": report.ok, "reasons": [e.detail for e in report.checks.values() if not e.ok],
            "evidence": report.evidence()}


def _line(name: str, x: list[Any], y: list[Any]) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines+markers", "name": name, "x": x, "y": y}


def _layout(title: str, ytitle: str = "", *, x: list[Any] | None = None) -> dict[str, Any]:
    from bastion.monitor.figures import time_axis

    out: dict[str, Any] = {"title": {"text": title}, "height": 320, "margin": {"l": 50, "r": 10, "t": 40, "b": 50},
                           "yaxis": {"title": {"text": ytitle}}}
    if x is not None:
        out["xaxis"] = time_axis(x)
    return out


def _feature_rows(window: dict[str, Any]) -> list[dict[str, Any]]:
    """The latest window's features with one comparable score (computed for windows stored before it was)."""
    from bastion.monitor.figures import drift_score

    rows = []
    for f in window.get("features") or []:
        row = dict(f)
        if row.get("score") is None:
            basis = row.get("basis") or ("p_value" if row.get("verdict_test") in ("ks", "chi2") else "effect")
            row["basis"] = basis
            row["score"] = drift_score(basis=basis, statistic=row.get("statistic"), threshold=row.get("threshold"),
                                       p_value_adjusted=row.get("p_value_adjusted"))
        rows.append(row)
    rows.sort(key=lambda r: (not r.get("drifted"), -(r.get("score") or 0.0)))
    return rows


def monitoring_page(project: ProjectHandle, ref: str) -> dict[str, Any]:
    """Monitoring history of a model version as Plotly figures and tables.

    Drift is plotted as one comparable score per feature (1 = that feature's threshold), never as raw
    statistics of different tests on one axis; distributions are reference vs current per feature.
    """
    from bastion.monitor.figures import SCORE_EXPLAINED, feature_figure, score_figure
    from bastion.monitor.store import load_history

    mv = project.get_model(ref, include_deleted=True)
    history = load_history(project, mv.ref)
    latest = history[-1] if history else None
    features = _feature_rows(latest) if latest else []
    x = [w.get("window_end") for w in history]
    figures = []
    distributions = []
    if latest:
        figures.append({"id": "drift-score", "figure": score_figure(
            features, title=f"Drift score per feature, window ending {latest.get('window_end')}")})
        if len(history) > 1:
            per_feature: dict[str, list[Any]] = {}
            for i, w in enumerate(history):
                for f in _feature_rows(w):
                    per_feature.setdefault(str(f.get("column")), [None] * len(history))[i] = f.get("score")
            layout = _layout("Drift score per feature over time (1 = threshold)", "score", x=x)
            layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 1, "y1": 1,
                                "line": {"color": "#c62828", "dash": "dash"}}]
            figures.append({"id": "drift-history", "figure": {
                "data": [_line(col, x, ys) for col, ys in sorted(per_feature.items())], "layout": layout}})
            figures.append({"id": "drift-share", "figure": {
                "data": [_line("drift share", x, [w.get("drift_share") for w in history]),
                         _line("anomaly share", x, [(w.get("anomaly") or {}).get("share") for w in history])],
                "layout": _layout("Share of drifted features and of anomalous rows", "share", x=x)}})
        perf: dict[str, tuple[list[Any], list[Any]]] = {}
        for w in history:
            for p in w.get("performance") or []:
                for metric, value in (p.get("metrics") or {}).items():
                    xs, ys = perf.setdefault(metric, ([], []))
                    xs.append(p.get("end"))
                    ys.append(value)
        if perf:
            all_x = [v for xs, _ in perf.values() for v in xs]
            figures.append({"id": "performance", "figure": {
                "data": [_line(m, xs, ys) for m, (xs, ys) in sorted(perf.items())],
                "layout": _layout("Performance on delayed labels", "value", x=all_x)}})
        for i, f in enumerate(features[:24]):
            fig = feature_figure(f)
            if fig is not None:
                distributions.append({"id": f"dist-{i}", "column": f.get("column"), "figure": fig})
    alerts = [dict(a, window_end=w.get("window_end")) for w in history for a in w.get("alerts") or []]
    attacks = [dict(a, window_end=w.get("window_end")) for w in history for a in w.get("attacks") or []]
    status, why = drift_status(latest)
    return {"mv": mv, "history": history, "figures": figures, "distributions": distributions,
            "features": features, "score_explained": SCORE_EXPLAINED, "alerts": alerts[::-1],
            "attacks": attacks[::-1], "status": status, "why": why, "latest": latest}


def dataset_page(project: ProjectHandle, ref: str) -> dict[str, Any]:
    """A dataset version: schema, statistics and its protection report (masked examples only)."""
    dv = project.get_dataset(ref, include_deleted=True)
    protection = _last(project, dv.ref, "protection", "dataset")
    columns = []
    if protection:
        for c in protection.get("columns") or []:
            # Only fields that cannot carry raw values: the report's examples are already masked.
            columns.append({k: c.get(k) for k in ("column", "entity", "confidence", "operator", "reason",
                                                  "masked_examples", "scope")})
    versions = sorted(project.list_datasets(dv.name, include_deleted=True), key=lambda d: d.version)
    kanon: dict[str, Any] = (protection or {}).get("k_anonymity") or {}
    below = kanon.get("min_k") is not None and kanon.get("k") is not None and kanon["k"] < kanon["min_k"]
    pii = {c["column"] for c in columns if c.get("entity")}
    return {
        "dv": dv,
        "versions": versions,
        "protection": protection,
        "protection_columns": columns,
        "k_anonymity": kanon or None,
        "k_below_policy": below,
        "distributions": _dataset_distributions(project, dv, skip=pii),
    }


_HIST_CACHE: dict[str, dict[str, dict[str, Any]]] = {}
_HIST_MAX_BYTES = 64 << 20  # larger versions show category bars only (no file read on a page view)


def _numeric_histograms(project: ProjectHandle, dv: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """Histograms of numeric columns, read once per dataset digest (the stored, verified file)."""
    import numpy as np

    if not names or dv.size > _HIST_MAX_BYTES or not str(dv.fmt).endswith(("parquet", "csv", "jsonl")):
        return {}
    if dv.digest in _HIST_CACHE:
        return _HIST_CACHE[dv.digest]
    out: dict[str, dict[str, Any]] = {}
    try:
        if str(dv.fmt).startswith("dir"):
            return {}
        df = project.read_dataset(dv.ref)
        for name in names:
            values = np.asarray(df[name].dropna(), dtype=np.float64) if name in df.columns else np.array([])
            if values.size == 0:
                continue
            counts, edges = np.histogram(values, bins=min(30, max(5, int(np.sqrt(values.size)))))
            out[name] = {"edges": [float(e) for e in edges], "shares": [float(c / values.size) for c in counts]}
    except (BastionError, OSError, ValueError, TypeError) as e:
        log.info("no histograms for %s: %s", dv.ref, type(e).__name__)
        return {}
    if len(_HIST_CACHE) > 32:
        _HIST_CACHE.clear()
    _HIST_CACHE[dv.digest] = out
    return out


def _dataset_distributions(project: ProjectHandle, dv: Any, *, skip: set[str]) -> list[dict[str, Any]]:
    """One figure per column: category shares (low-cardinality columns) or a histogram (numeric columns).

    Columns the protection report found PII in are never drawn.
    """
    from itertools import pairwise

    numeric = [f["name"] for f in dv.schema if f["name"] not in skip and
               any(t in str(f["type"]) for t in ("int", "float", "double", "decimal"))]
    hists = _numeric_histograms(project, dv, numeric)
    figures = []
    for i, f in enumerate(dv.schema):
        name = f["name"]
        if name in skip:
            continue
        stats = dv.stats.get(name) or {}
        layout = {"title": {"text": name, "font": {"size": 13}}, "height": 240, "showlegend": False,
                  "margin": {"l": 40, "r": 10, "t": 34, "b": 50}, "yaxis": {"title": {"text": "share"}}}
        cats = stats.get("categories")
        if isinstance(cats, dict) and cats:
            total = sum(int(v) for v in cats.values()) or 1
            top = sorted(cats.items(), key=lambda kv: -int(kv[1]))[:20]
            data = [{"type": "bar", "x": [str(k) for k, _ in top], "y": [int(v) / total for _, v in top],
                     "marker": {"color": "#4c78a8"}}]
        elif name in hists:
            h = hists[name]
            data = [{"type": "bar", "x": [(a + b) / 2 for a, b in pairwise(h["edges"])], "y": h["shares"],
                     "width": h["edges"][1] - h["edges"][0], "marker": {"color": "#4c78a8"}}]
        else:
            continue
        figures.append({"id": f"col-{i}", "column": name, "figure": {"data": data, "layout": layout}})
    return figures[:40]


def audit_page(
    project: ProjectHandle,
    *,
    actor: str = "",
    action: str = "",
    subject: str = "",
    before: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """One page of audit entries, newest first, filtered; ``before`` is the cursor (a sequence number)."""
    rows = project.audit.entries(limit=limit + 1, actor=actor or None, action=action or None,
                                 subject=subject or None, before=before)
    entries = rows[:limit]
    next_before = entries[-1].seq if len(rows) > limit else None
    return {"entries": entries, "next_before": next_before}
