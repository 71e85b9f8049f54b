"""Every gate check (performance, fairness, diversity, robustness through ART's black-box attack, membership
inference) runs on every flavor through its predict adapter; the model card and ML-BOM name the framework."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.flavors import builders as b

FEATS = [*b.FEATURES, "sex"]
POLICY = """
version: 1
name: every-check
target: label
positive_label: 1
sensitive_attributes: [sex]
min_group_size: 10
checks:
  performance: {thresholds: {accuracy: 0.6, roc_auc: 0.6}}
  fairness: {thresholds: {demographic_parity_difference: 0.95}}
  diversity: {min_share: 0.1}
  robustness: {sample_size: 3, query_budget: 150, epsilon: 0.5, max_attack_success_rate: 1.0,
               stability_sample_size: 200, min_stability: 0.5}
  privacy: {sample_size: 200, max_auc: 0.99}
"""


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from bastion.gates.run import run_gate
    from bastion.project import init_project

    root = tmp_path_factory.mktemp("gated")
    p = init_project(root / "proj")
    df = b.frame(700, seed=3, sex=True)
    train, hold = df.iloc[:500].reset_index(drop=True), df.iloc[500:].reset_index(drop=True)
    dv = p.register_dataset(train[[*FEATS, "label"]], name="credit")
    policy = root / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    made = {
        "onnx": b.onnx_pipeline(train, root, FEATS)[0], "xgboost": b.xgboost_json(train, root, features=FEATS)[0],
        "lightgbm": b.lightgbm_text(train, root, FEATS)[0], "skops": b.skops_control(train, root, FEATS)[0],
    }
    results = {}
    for flavor, path in made.items():
        mv = p.log_model(path, name=flavor, datasets=[dv.ref])
        results[flavor] = run_gate(p, mv.ref, policy, hold, sign=False)
    yield {"project": p, "results": results}
    p.close()


@pytest.mark.parametrize("flavor", ["onnx", "xgboost", "lightgbm", "skops"])
def test_every_check_runs_on_every_flavor(gated: dict[str, Any], flavor: str) -> None:
    result = gated["results"][flavor]
    by_name = {c.name: c for c in result.checks}
    assert set(by_name) == {"performance", "fairness", "diversity", "robustness", "privacy"}
    for c in result.checks:
        assert c.error is None, f"{c.name}: {c.error}"
    assert by_name["performance"].measured["accuracy"] > 0.75
    assert 0.5 < by_name["performance"].measured["roc_auc"] <= 1.0  # probabilities reached the check
    assert by_name["fairness"].evidence["groupings"][0]["name"] == "sex"
    rob = by_name["robustness"].evidence
    assert rob["attacked_rows"] == 3 and rob["mean_queries_per_row"] > 0  # ART queried the adapter
    assert 0.0 <= by_name["privacy"].measured["membership_auc"] <= 1.0
    assert result.passed


@pytest.mark.parametrize(("flavor", "framework"), [("onnx", "onnxruntime"), ("xgboost", "xgboost"),
                                                   ("lightgbm", "lightgbm"), ("skops", "scikit-learn")])
def test_model_card_and_ml_bom_name_the_framework(gated: dict[str, Any], flavor: str, framework: str) -> None:
    from bastion.flavors.interface import dist_version
    from bastion.gates.card import cyclonedx_bom, render_markdown

    p = gated["project"]
    version = dist_version(framework)
    md = render_markdown(p, f"{flavor}:1")
    assert f"{framework}=={version}" in md and f"({flavor})" in md
    bom = cyclonedx_bom(p, f"{flavor}:1")
    comp = bom["metadata"]["component"]
    props = {x["name"]: x["value"] for x in comp.get("properties", [])}
    assert props["bastion:flavor"] == flavor and props["bastion:framework"] == f"{framework}=={version}"
    assert comp["modelCard"]["modelParameters"]["task"] == "classification"
    deps = {c["name"]: c.get("version") for c in bom.get("components", []) if c.get("type") == "framework"}
    assert deps.get(framework) == version


def test_gates_refuse_a_stored_only_flavor(gated: dict[str, Any], tmp_path: Path) -> None:
    from bastion.errors import UnsafeArtifactError
    from bastion.gates.run import run_gate

    p = gated["project"]
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\x00" * 64)
    mv = p.log_model(f, name="opaque", flavor="file")
    with pytest.raises(UnsafeArtifactError, match=r"cannot\s+be gated or served"):
        run_gate(p, mv.ref, {"version": 1, "name": "x", "target": "label", "checks": {"performance": {}}},
                 "credit:1", sign=False)
