"""`bastion gate run|mitigate` through the real entry point."""

from __future__ import annotations

import json

import pytest
import yaml

from bastion.demo.data import ADULT_FEATURES, ADULT_TARGET, load_adult


@pytest.fixture
def setup(project, project_dir):
    from tests.gates.conftest import baseline

    train = load_adult("train", rows=3000)
    model = baseline()
    model.fit(train[ADULT_FEATURES], train[ADULT_TARGET])
    mv = project.log_model(model, name="income")
    load_adult("test", rows=2000).to_parquet(project_dir / "holdout.parquet")
    train.to_parquet(project_dir / "train.parquet")
    policy = {"version": 1, "sensitive_attributes": ["sex"], "positive_label": 1,
              "checks": {"performance": {"thresholds": {"accuracy": 0.7}},
                         "fairness": {"thresholds": {"demographic_parity_difference": 0.1}}}}
    (project_dir / "bastion-policy.yaml").write_text(yaml.safe_dump(policy))
    return mv.ref


def test_gate_run_fails_with_table_json_and_html(cli, setup, project_dir) -> None:
    r = cli("gate", "run", setup, "--data", "holdout.parquet", "--target", ADULT_TARGET, "--html", "r.html")
    assert r.exit_code == 1, r.stderr
    assert "fairness" in r.stdout and "FAIL" in r.stdout and "pass" in r.stdout
    assert (project_dir / "r.html").stat().st_size > 1_000_000
    j = cli("gate", "run", setup, "--data", "holdout.parquet", "--target", ADULT_TARGET, "--json")
    doc = json.loads(j.stdout)
    assert j.exit_code == 1 and doc["passed"] is False and doc["failed_required"] == ["fairness"]


def test_gate_mitigate_then_pass(cli, setup) -> None:
    m = cli("gate", "mitigate", setup, "--method", "threshold", "--data", "train.parquet", "--target",
            ADULT_TARGET, "--sensitive", "sex", "--json")
    assert m.exit_code == 0, m.stderr
    new = json.loads(m.stdout)
    assert new["parent"] == setup
    r = cli("gate", "run", new["ref"], "--data", "holdout.parquet", "--target", ADULT_TARGET)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "PASSED" in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--policy", "nope.yaml"], "does not exist"),
        (["--target", "salary"], "target column 'salary'"),
    ],
)
def test_gate_run_usage_errors_exit_2(cli, setup, args, needle) -> None:
    base = ["gate", "run", setup, "--data", "holdout.parquet"]
    if "--target" not in args:
        base += ["--target", ADULT_TARGET]
    r = cli(*base, *args)
    assert r.exit_code == 2 and needle in r.stderr
