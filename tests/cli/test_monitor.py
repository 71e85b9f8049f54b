"""`bastion monitor report|run|labels add` through the real entry point."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest


def _data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"age": rng.normal(45 + 10 * shift, 10, n), "sex": rng.choice(["F", "M"], n)})
    df["y"] = (df["age"] > 45).astype(int)
    return df


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, df in {"train": _data(3000, 0), "same": _data(3000, 1), "moved": _data(3000, 2, shift=1.0)}.items():
        out[name] = tmp_path / f"{name}.parquet"
        df.to_parquet(out[name])
    return out


def test_report_without_registry(cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    r = cli("monitor", "report", "--reference", str(files["train"]), "--current", str(files["moved"]),
            "--target", "y", "-o", str(html))
    assert r.exit_code == 1, r.stderr  # drift alert
    assert "DRIFT" in r.stdout and "age" in r.stdout and html.exists()
    r = cli("monitor", "report", "--reference", str(files["train"]), "--current", str(files["same"]), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["drift"]["dataset_drift"] is False and doc["schema_version"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--current", "x.parquet"], "exactly one of --model"),
        (["--reference", "nope.parquet", "--current", "nope2.parquet"], "does not exist"),
        (["--reference", "{train}", "--current", "{same}", "-o", "r.pdf"], ".html or .json"),
        (["--reference", "{train}", "--current", "{same}", "--config", "missing.yaml"], "does not exist"),
    ],
)
def test_report_usage_errors(cli: Callable[..., Any], files: dict[str, Path], args: list[str], message: str) -> None:
    args = [a.format(train=files["train"], same=files["same"]) for a in args]
    r = cli("monitor", "report", *args)
    assert r.exit_code == 2 and message in r.stderr


def test_bad_policy_is_a_usage_error(cli: Callable[..., Any], files: dict[str, Path], tmp_path: Path) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text("monitoring:\n  drift:\n    verdict: vibes\n", encoding="utf-8")
    r = cli("monitor", "report", "--reference", str(files["train"]), "--current", str(files["same"]),
            "--config", str(pol))
    assert r.exit_code == 2 and "drift.verdict" in r.stderr


def test_labels_and_run_once_with_registry(cli: Callable[..., Any], project: Any, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from bastion.monitor.prediction_log import PredictionLogWriter, PredictionRecord

    train = _data(2000, 0)
    ds = project.register_dataset(train[["age", "y"]], name="t")
    m = LogisticRegression().fit(train[["age"]], train["y"])
    mv = project.log_model(m, name="m", datasets=[ds.ref], params={"target": "y"})
    project.promote(mv.ref, alias="production", force_reason="test")
    live = _data(600, 3, shift=1.0)
    now = datetime.now(UTC)
    probas = m.predict_proba(live[["age"]])[:, 1]
    with PredictionLogWriter(project, "m") as w:
        for i, age in enumerate(live["age"]):
            p = float(probas[i])
            w.append(PredictionRecord(request_id=f"r{i}", version=mv.version, key_id="app", client="10.0.0.2",
                                      ts=now - timedelta(minutes=30), inputs={"age": float(age)},
                                      outputs={"label": int(p > 0.5), "proba": p}))
    labels = tmp_path / "outcomes.parquet"
    pd.DataFrame({"rid": [f"r{i}" for i in range(300)], "outcome": live["y"].iloc[:300]}).to_parquet(labels)
    r = cli("monitor", "labels", "add", "m", "--file", str(labels), "--id-column", "rid", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 300
    out = tmp_path / "run.json"
    r = cli("monitor", "run", "--model", "m@production", "--window", "1h", "--once", "--json", "-o", str(out))
    assert r.exit_code == 1, r.stderr  # drift alert
    doc = json.loads(r.stdout)
    assert "age" in doc["drift"]["drifted_features"] and doc["performance"][0]["n_labelled"] == 300
    assert json.loads(out.read_text())["model"] == "m:1"
    r = cli("monitor", "report", "--model", "m@production", "--current",
            str(project.settings.home_path / "predictions" / "m" / "*.parquet"), "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["target"] == "y"
    r = cli("monitor", "run", "--model", "m@production", "--window", "soon", "--once")
    assert r.exit_code == 2 and "Duration" in r.stderr


def test_summary_shows_severities_and_column_names_as_text_never_as_markup(capsys) -> None:
    from bastion.cli.monitor import _summary

    feature = {"column": "[bold]weird[/bold]", "kind": "numeric", "verdict_test": "ks", "tests": {},
               "threshold": 0.05, "p_value_adjusted": 0.01, "drifted": True}
    doc = {"drift": {"features": [feature], "dataset_drift": True, "n_drifted": 1, "n_reference": 10,
                     "n_current": 10, "verdict": "share"},
           "alerts": [{"severity": "critical", "rule": "drift", "message": "column [x] drifted"}],
           "attacks": [{"rule": "probe", "subject": "[key]", "message": "many [queries]"}]}
    _summary(doc, None)
    out = capsys.readouterr().out
    assert "[critical] drift: column [x] drifted" in out
    assert "probe [key]: many [queries]" in out
    assert "[bold]weird[/bold]" in out
