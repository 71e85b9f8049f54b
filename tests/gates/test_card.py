"""Model card (Markdown/HTML) and the CycloneDX 1.6 ML-BOM, validated offline."""

from __future__ import annotations

import copy

import pytest

from bastion.demo.data import ADULT_TARGET
from bastion.errors import VerificationError
from bastion.gates import card, run_gate
from tests.gates.conftest import POLICY


@pytest.fixture(scope="module")
def carded(gated, adult_test):
    p, ref, _ = gated
    pol = copy.deepcopy(POLICY)
    pol["checks"] = {k: v for k, v in pol["checks"].items() if k in {"performance", "fairness"}}
    run_gate(p, ref, pol, adult_test, ADULT_TARGET)
    return p, ref


def test_markdown_and_html_cards(carded) -> None:
    p, ref = carded
    md = card.render_markdown(p, ref)
    for section in ("## Intended use", "Predicts income > 50K.", "## Training data", "## Fairness per group",
                    "### sex x race", "## Robustness", "## Limitations", "## Training environment"):
        assert section in md
    html = card.render_html(p, ref)
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and "http" not in html.split("<body>")[1]


def test_cyclonedx_bom_validates_and_lists_environment(carded) -> None:
    p, ref = carded
    bom = card.cyclonedx_bom(p, ref)
    assert bom["specVersion"] == "1.6"
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and "modelCard" in model
    assert model["modelCard"]["considerations"]["fairnessAssessments"]
    names = {c["name"] for c in bom["components"] if c["type"] == "library"}
    frameworks = {c["name"] for c in bom["components"] if c["type"] == "framework"}
    assert "numpy" in names and "scikit-learn" in frameworks  # what loads the model is its framework component
    assert any(c["type"] == "data" for c in bom["components"])


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["quantitativeAnalysis"]["performanceMetrics"].append({"type": "accuracy", "value": 0.9}),
        lambda c: c.update({"considerations": "none"}),
        lambda c: c.update({"unknownField": 1}),
    ],
)
def test_broken_model_card_fails_validation(carded, breakage) -> None:
    p, ref = carded
    bom = card.cyclonedx_bom(p, ref)
    breakage(bom["metadata"]["component"]["modelCard"])
    with pytest.raises(VerificationError, match=r"not valid CycloneDX 1\.6"):
        card.validate_bom(bom)
