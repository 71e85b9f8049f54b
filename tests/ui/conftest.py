"""Dashboard fixtures: one small project per session (dataset, two model versions, a gate, aliases, a window),
copied per test that changes it; users of each role; a logged-in TestClient helper.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette's TestClient warns (once, at import) that it uses httpx rather than httpx2: test plumbing only.
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401

PASSWORDS = {"viewer": "viewer-pass-1", "operator": "operator-pass-1", "admin": "admin-pass-1"}

POLICY = """version: 1
name: ui-test
positive_label: 1
checks:
  performance:
    thresholds: {accuracy: 0.5}
aliases:
  production:
    requires: [gate]
"""


def _gate_doc(ref: str, digest: str) -> dict[str, Any]:
    groups = [
        {"group": {"sex": g}, "count": n, "selection_rate": s, "tpr": 0.7, "fpr": 0.1, "fnr": 0.3,
         "accuracy": 0.8, "small": False}
        for g, n, s in (("Female", 40, 0.31), ("Male", 60, 0.36))
    ]
    return {
        "schema_version": 1, "gate_id": "g-test", "ref": ref, "model_digest": digest,
        "policy": {"name": "ui-test", "version": 1, "digest": "sha256:0"}, "passed": True, "failed_required": [],
        "checks": [
            {"name": "performance", "passed": True, "required": True, "measured": {"accuracy": 0.81},
             "threshold": {"accuracy": 0.5}, "error": None, "evidence": {}},
            {"name": "fairness", "passed": True, "required": True, "measured": {}, "threshold": {}, "error": None,
             "evidence": {"groupings": [{"name": "sex", "attributes": ["sex"], "groups": groups,
                                         "disparities": {"demographic_parity_difference": 0.05},
                                         "small_groups": []}]}},
        ],
        "datasets": {}, "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:01+00:00",
        "duration_s": 1.0, "actor": "test-user", "attestation": {},
    }


def build_ui_project(root: Path) -> Path:
    """A small project: dataset ``people:1``, model ``risk`` v1 and v2, staging -> v1 then v2, a gate, a window."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from bastion.project import init_project
    from bastion.ui.users import UserStore

    p = init_project(root)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"age": rng.integers(18, 90, 200), "income": rng.normal(50, 10, 200),
                       "sex": rng.choice(["Female", "Male"], 200)})
    df["label"] = (df["income"] > 50).astype(int)
    dv = p.register_dataset(df, name="people", description="test people")
    for c in (0.5, 1.0):
        model = LogisticRegression(C=c).fit(df[["age", "income"]], df["label"])
        mv = p.log_model(model, name="risk", datasets=[dv.ref], metrics={"accuracy": 0.8 + c / 100},
                         params={"C": c})
        p.attach(mv.ref, "gate", _gate_doc(mv.ref, mv.digest))
    p.promote("risk:1", alias="staging")
    p.promote("risk:2", alias="staging")
    # two monitoring windows summarised by the real code: the second one with income shifted
    from bastion.monitor.config import DriftConfig
    from bastion.monitor.drift import compute_drift
    from bastion.monitor.store import summarize_window

    feats = ["age", "income", "sex"]
    for hour, shift in ((0, 0.0), (1, 8.0)):
        cur = df[feats].sample(150, random_state=hour).assign(income=lambda d, s=shift: d["income"] + s)
        rep = compute_drift(df[feats], cur, config=DriftConfig(dataset_drift_share=0.5))
        p.attach("risk:2", "monitor_window", summarize_window({
            "model": "risk:2", "window_start": f"2026-01-01T0{hour}:00:00+00:00",
            "window_end": f"2026-01-01T0{hour + 1}:00:00+00:00", "drift": rep.to_dict(),
            "performance": [{"end": f"2026-01-01T0{hour + 1}:00:00+00:00", "metrics": {"accuracy": 0.8 - hour / 20}}],
            "anomaly": {"share": 0.02, "exceeded": False}, "attacks": [],
            "alerts": [{"id": "a1", "rule": "data-drift", "severity": "warning"}] if shift else [],
        }))
    (root / "bastion-policy.yaml").write_text(POLICY, encoding="utf-8")
    store = UserStore(p)
    for role, password in PASSWORDS.items():
        store.add(role, password, role=role)
    p.close()
    return root


@pytest.fixture(scope="session")
def ui_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ui_project(tmp_path_factory.mktemp("ui-template") / "proj")


@pytest.fixture
def ui_root(ui_template: Path, tmp_path: Path) -> Path:
    """A private copy of the UI test project."""
    root = tmp_path / "proj"
    shutil.copytree(ui_template, root)
    return root


@pytest.fixture
def ui_app(ui_root: Path) -> Any:
    from bastion.ui import create_ui_app

    return create_ui_app(ui_root)


@pytest.fixture
def client(ui_app: Any) -> Any:
    from starlette.testclient import TestClient

    with TestClient(ui_app, base_url="http://127.0.0.1") as c:
        yield c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def login(client: Any, role: str) -> str:
    """Log ``client`` in as the user named after ``role``; returns the session's CSRF token."""
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": role, "password": PASSWORDS[role],
                                    "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/").text)
