"""`model show` names the metrics a version's gate measured when it was registered without any (mitigated ones)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression


def _model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


def test_show_falls_back_to_gate_metrics_and_says_so(cli: Any) -> None:
    from bastion.project import open_project

    assert cli("init").exit_code == 0
    p = open_project()
    logged = p.log_model(_model(), name="risk", metrics={"auc": 0.9})
    bare = p.log_model(_model(), name="risk")
    gate = {"checks": [{"name": "performance", "measured": {"accuracy": 0.81, "passed": True}},
                       {"name": "fairness", "measured": {"dp_diff": 0.02}}]}
    p.attach(bare.ref, "gate", gate)
    p.attach(logged.ref, "gate", gate)
    p.close()

    doc = json.loads(cli("model", "show", bare.ref, "--json").stdout)
    assert doc["metrics"] == {} and doc["measured_metrics"] == {"metrics": {"accuracy": 0.81}, "source": "gate"}
    text = cli("model", "show", bare.ref).stdout
    assert "accuracy=0.81 (measured by its gate)" in text.replace(": ", "=")

    doc = json.loads(cli("model", "show", logged.ref, "--json").stdout)  # logged metrics win over the gate's
    assert doc["measured_metrics"] == {"metrics": {"auc": 0.9}, "source": "logged"}
    assert "measured by its gate" not in cli("model", "show", logged.ref).stdout


def test_show_without_any_metrics_says_none(cli: Any) -> None:
    from bastion.project import open_project

    assert cli("init").exit_code == 0
    p = open_project()
    mv = p.log_model(_model(), name="plain")
    p.close()
    doc = json.loads(cli("model", "show", mv.ref, "--json").stdout)
    assert doc["measured_metrics"] == {"metrics": {}, "source": None}
