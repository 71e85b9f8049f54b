"""`bastion model card` in md, html and cyclonedx formats."""

from __future__ import annotations

import json

import pytest
from sklearn.linear_model import LogisticRegression

from bastion.demo.data import ADULT_NUMERIC, ADULT_TARGET, load_adult


@pytest.fixture
def ref(project):
    df = load_adult("train", rows=500)
    return project.log_model(LogisticRegression(max_iter=200).fit(df[ADULT_NUMERIC], df[ADULT_TARGET]),
                             name="m", description="Demo model.").ref


def test_card_formats(cli, ref, project_dir) -> None:
    md = cli("model", "card", ref)
    assert md.exit_code == 0 and "# Model card: m:1" in md.stdout and "Demo model." in md.stdout
    html = cli("model", "card", ref, "--format", "html", "-o", "card.html")
    assert html.exit_code == 0 and (project_dir / "card.html").read_text().startswith("<!DOCTYPE html>")
    bom = cli("model", "card", ref, "--format", "cyclonedx")
    assert bom.exit_code == 0
    doc = json.loads(bom.stdout)
    assert doc["specVersion"] == "1.6" and "modelCard" in doc["metadata"]["component"]


def test_card_bad_format_exits_2(cli, ref) -> None:
    r = cli("model", "card", ref, "--format", "pdf")
    assert r.exit_code == 2 and "md, html or cyclonedx" in r.stderr
