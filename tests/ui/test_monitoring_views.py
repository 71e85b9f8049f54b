"""What the monitoring, dataset and version pages show: one comparable drift score (with the threshold
line), statistic / p-value / threshold per feature, reference-vs-current distributions, dataset
distributions with a k-anonymity below the policy in warning colour, metrics across versions."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from bastion.flavors.sklearn import _framework_of
from bastion.monitor.figures import drift_score, time_axis

from .conftest import _gate_doc, login


@pytest.mark.parametrize(
    ("basis", "statistic", "threshold", "p", "expected"),
    [
        ("effect", 0.2, 0.1, None, 2.0),  # statistic over threshold
        ("effect", 0.05, 0.1, None, 0.5),
        ("p_value", 0.3, 0.05, 0.05, 1.0),  # at alpha: exactly the threshold
        ("p_value", 0.3, 0.05, 0.0005, math.log10(0.0005) / math.log10(0.05)),
        ("p_value", 0.3, 0.05, 0.0, 300 / -math.log10(0.05)),  # p = 0 is floored, not infinite
        ("p_value", 0.3, 0.05, None, None),
        ("effect", None, 0.1, None, None),
        ("effect", 0.2, 0.0, None, None),  # no threshold, no score
        ("p_value", 0.3, 1.5, 0.01, None),  # alpha must be in (0, 1)
    ],
)
def test_drift_score(basis: str, statistic: float | None, threshold: float, p: float | None,
                     expected: float | None) -> None:
    got = drift_score(basis=basis, statistic=statistic, threshold=threshold, p_value_adjusted=p)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_score_is_above_one_exactly_when_the_feature_drifted(client: Any, ui_app: Any) -> None:
    from bastion.ui._views import monitoring_page

    page = monitoring_page(ui_app.state.project, "risk:2")
    rows = page["features"]
    assert {r["column"] for r in rows} == {"age", "income", "sex"}
    for r in rows:
        assert r["score"] is not None and (r["score"] > 1) == bool(r["drifted"]), r
    assert rows[0]["column"] == "income" and rows[0]["drifted"]  # drifted first


def _figure(html: str, fig_id: str) -> dict[str, Any]:
    m = re.search(rf'<script type="application/json" id="fig-{fig_id}">(.*?)</script>', html, re.S)
    assert m, fig_id
    return json.loads(m.group(1))


def test_monitoring_page_plots_one_comparable_score_with_the_threshold(client: Any) -> None:
    login(client, "viewer")
    html = client.get("/models/risk/2/monitoring").text
    fig = _figure(html, "drift-score")
    [bars] = fig["data"]
    assert bars["x"][0] == "income" and bars["y"][0] > 1 > max(bars["y"][1:])
    assert fig["layout"]["shapes"][0]["y0"] == 1 == fig["layout"]["shapes"][0]["y1"]  # the threshold line
    assert "statistic" not in fig["layout"]["yaxis"]["title"]["text"]
    table = html[html.index('id="features"'):]
    for header in ("Statistic", "p-value", "p-value (adjusted)", "Threshold", "Score"):
        assert f"<th>{header}</th>" in table
    assert "p &lt; 0.05" in table and "e-" in table  # a small p-value is shown, not rounded to 0.0000
    dists = [_figure(html, f"dist-{i}") for i in range(3)]
    assert {d["data"][0]["name"] for d in dists} == {"reference"} and all(len(d["data"]) == 2 for d in dists)
    assert "DRIFT" in dists[0]["layout"]["title"]["text"]


def test_a_single_point_gets_no_microsecond_ticks() -> None:
    assert time_axis(["2026-01-01T01:00:00+00:00"])["type"] == "category"
    assert time_axis(["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"])["type"] == "date"


def test_dataset_page_distributions_and_k_anonymity_warning(client: Any, ui_app: Any) -> None:
    p = ui_app.state.project
    login(client, "viewer")
    html = client.get("/datasets/people/1").text
    assert 'id="kanon-warning"' not in html
    names = [_figure(html, f"col-{i}")["layout"]["title"]["text"] for i in range(4)]
    assert names == ["age", "income", "sex", "label"]
    sex = _figure(html, "col-2")["data"][0]
    assert sorted(sex["x"]) == ["Female", "Male"] and sum(sex["y"]) == pytest.approx(1)
    income = _figure(html, "col-1")["data"][0]
    assert sum(income["y"]) == pytest.approx(1) and len(income["x"]) >= 5
    p.attach("people:1", "protection", {
        "schema_version": 1, "created": "now", "rows": 200, "policy_source": "test",
        "columns": [{"column": "income", "entity": "US_SSN", "operator": "encrypt", "masked_examples": ["***"]}],
        "k_anonymity": {"k": 2, "min_k": 5, "satisfied": False, "classes": 150, "rows_below_min_k": 120,
                        "quasi_identifiers": ["age", "sex"]}}, subject_kind="dataset")
    html = client.get("/datasets/people/1").text
    assert 'id="kanon-warning"' in html and "below the policy" in html and '<tr class="warn"><th>k</th>' in html
    assert 'data-figure="fig-col-1"' not in html  # a column with PII is never drawn


def test_version_page_charts_metrics_across_versions_and_falls_back_to_the_gate(client: Any,
                                                                                  ui_app: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    p = ui_app.state.project
    mv = p.log_model(LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1]), name="risk")  # no metrics
    gate = _gate_doc(mv.ref, mv.digest)
    gate["checks"][0]["measured"] = {"accuracy": 0.79, "note": "not a number"}
    p.attach(mv.ref, "gate", gate)
    login(client, "viewer")
    html = client.get(f"/models/risk/{mv.version}").text
    assert 'id="metrics-source"' in html and "0.7900" in html
    fig = _figure(html, "metrics")
    [acc] = [t for t in fig["data"] if t["name"] == "accuracy"]
    assert acc["x"] == ["v1", "v2", f"v{mv.version}"] and acc["y"][-1] == pytest.approx(0.79)
    assert acc["marker"]["symbol"] == ["circle", "circle", "circle-open"]


def test_model_card_framework_names_the_distribution() -> None:
    from sklearn.linear_model import LogisticRegression

    from bastion.gates.mitigate import MitigatedClassifier

    sk = _framework_of(LogisticRegression())
    assert re.fullmatch(r"scikit-learn==\d+\.\d+(\.\d+)?", sk)
    mit = _framework_of(MitigatedClassifier())
    assert mit.startswith("bastion-mlops==") and "unknown" not in mit
    assert mit.endswith(f"(MitigatedClassifier over {sk})")
