"""Reports: one self-contained HTML file (Plotly inlined, no network) and JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.errors import DataError
from bastion.monitor.report import render_html, write_report
from bastion.monitor.runner import report_from_data


def _result():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    n = 3000
    ref = pd.DataFrame({"a": rng.normal(size=n), "c": rng.choice(["x", "y"], n), "y": rng.integers(0, 2, n)})
    cur = pd.DataFrame({"a": rng.normal(1, 1, n), "c": rng.choice(["x", "y", "<script>"], n),
                        "y": rng.integers(0, 2, n)})
    cur["out.label"] = cur["y"]
    cur["out.proba"] = rng.random(n)
    return report_from_data(ref, cur, target="y")


def test_html_is_self_contained(tmp_path: Path) -> None:
    res = _result()
    out = write_report(res, tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # plotly.js is inlined: no external scripts or stylesheets.
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=", html)
    from plotly.offline import get_plotlyjs

    assert "Plotly.newPlot" in html and get_plotlyjs()[:2000] in html
    for section in ("summary", "drift", "distributions", "performance", "anomalies", "attacks"):
        assert f'id="{section}"' in html
    # A category named like a tag is escaped in the table and cannot close the script block.
    assert "&lt;script&gt;" in html
    assert html.count("</script>") == 2


def test_json_report(tmp_path: Path) -> None:
    res = _result()
    doc = json.loads(write_report(res, tmp_path / "r.json").read_text())
    assert doc["schema_version"] == 1 and doc["drift"]["dataset_drift"] is True
    assert doc["drift"]["features"][0]["tests"]["wasserstein"]["statistic"] > 0.1
    assert doc["performance"][0]["metrics"]["accuracy"] == 1.0


def test_bad_report_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"\.html or \.json"):
        write_report(_result(), tmp_path / "r.pdf")
    with pytest.raises(DataError, match="drift"):
        render_html({"drift": {}})


def test_html_drift_table_shows_the_comparable_score() -> None:
    doc = _result().to_dict()
    html = render_html(doc)
    assert ">Score</th>" in html
    a = next(f for f in doc["drift"]["features"] if f["column"] == "a")
    assert a["drifted"]  # mean shifted by one standard deviation
    row = html[html.index("<b>a</b>"):]
    cells = re.findall(r"<td>([^<]*)</td>", row)[:6]
    assert float(cells[4]) > 1, cells  # kind, test, statistic, threshold, score
