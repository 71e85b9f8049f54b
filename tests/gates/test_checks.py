"""Each built-in check on data where it must pass and where it must fail."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier

from bastion.demo.data import ADULT_FEATURES, ADULT_NUMERIC, ADULT_TARGET
from bastion.gates.checks import get_check
from bastion.gates.checks.interface import CheckContext
from bastion.gates.checks.robustness import hsj_schedule
from bastion.gates.policy import load_policy
from bastion.gates.run import predict_frame
from tests.gates.conftest import POLICY


def context(model: Any, data: pd.DataFrame, *, checks: dict[str, Any] | None = None,
            train: pd.DataFrame | None = None, project: Any = None, **policy_kw: Any) -> CheckContext:
    doc = copy.deepcopy(POLICY)
    if checks is not None:
        doc["checks"] = checks
    doc.update(policy_kw)
    pol = load_policy(doc)
    feats = data[ADULT_FEATURES]
    y_pred, y_score = predict_frame(model, feats, 1, "classification")
    mv = SimpleNamespace(name="m", ref="m:1", digest="sha256:" + "0" * 64, datasets=[])
    return CheckContext(project=project, ref="m:1", model_version=mv, model=model, policy=pol, data=data,
                        target=ADULT_TARGET, features=feats, y_true=data[ADULT_TARGET].to_numpy().astype(int),
                        y_pred=y_pred, y_score=y_score, task="classification", positive_label=1,
                        train_data=train, seed=0)


@pytest.mark.parametrize(("accuracy", "passed"), [(0.75, True), (0.99, False)])
def test_performance(lr_model, adult_test, accuracy, passed) -> None:
    ctx = context(lr_model, adult_test, checks={"performance": {"thresholds": {"accuracy": accuracy,
                                                                                "log_loss": 0.6}}})
    res = get_check("performance").run(ctx)
    assert res.passed is passed
    assert 0.8 < res.measured["accuracy"] < 0.9 and res.measured["roc_auc"] > 0.85
    assert res.threshold == {"accuracy": accuracy, "log_loss": 0.6}


def test_fairness_fails_on_adult_and_passes_for_a_constant_model(lr_model, adult_test) -> None:
    checks = {"fairness": {"thresholds": {"demographic_parity_difference": 0.1, "equalized_odds_difference": 0.2}}}
    res = get_check("fairness").run(context(lr_model, adult_test, checks=checks))
    assert not res.passed and "sex: demographic_parity_difference" in res.evidence["failed"]
    assert {g["name"] for g in res.evidence["groupings"]} == {"sex", "race", "sex x race"}
    small = next(g for g in res.evidence["groupings"] if g["name"] == "sex x race")["small_groups"]
    assert small, "small intersection groups are reported"
    const = DummyClassifier(strategy="constant", constant=0).fit(adult_test[ADULT_FEATURES], adult_test[ADULT_TARGET])
    ok = get_check("fairness").run(context(const, adult_test, checks=checks))
    assert ok.passed and ok.measured["sex: demographic_parity_difference"] == 0.0


@pytest.mark.parametrize(
    ("settings", "passed", "failed"),
    [
        ({"min_share": 0.001, "expected_groups": {"sex": ["Female", "Male"]}}, True, []),
        ({"min_share": 0.05}, False, ["race: min_share"]),
        ({"max_imbalance_ratio": 5}, False, ["race: imbalance_ratio"]),
        ({"expected_groups": {"sex": ["Female", "Male", "Nonbinary"]}}, False, ["sex: missing groups ['Nonbinary']"]),
    ],
)
def test_diversity(lr_model, adult_test, adult_train, settings, passed, failed) -> None:
    res = get_check("diversity").run(context(lr_model, adult_test, checks={"diversity": settings}, train=adult_train))
    assert res.passed is passed and res.evidence["failed"] == failed


def test_diversity_without_training_data_fails_closed(lr_model, adult_test) -> None:
    res = get_check("diversity").run(context(lr_model, adult_test, checks={"diversity": {}}))
    assert not res.passed and res.error


def test_robustness_passes_for_a_constant_model_and_fails_for_a_fragile_one(lr_model, adult_test, adult_train):
    settings = {"sample_size": 3, "query_budget": 150, "stability_sample_size": 300, "epsilon": 50.0,
                "max_attack_success_rate": 0.2, "min_stability": 0.95}
    fragile = get_check("robustness").run(context(lr_model, adult_test, checks={"robustness": settings},
                                                  train=adult_train))
    # with a huge perturbation budget every attacked row flips: the attack must succeed
    assert not fragile.passed and fragile.measured["attack_success_rate"] > 0.2
    assert fragile.evidence["attacked_rows"] == 3 and fragile.evidence["mean_queries_per_row"] > 0
    const = DummyClassifier(strategy="constant", constant=0).fit(adult_test[ADULT_FEATURES], adult_test[ADULT_TARGET])
    sturdy = get_check("robustness").run(context(const, adult_test, checks={"robustness": settings},
                                                 train=adult_train))
    assert sturdy.passed and sturdy.measured == {"attack_success_rate": 0.0, "stability": 1.0}


def test_hsj_schedule_respects_budget() -> None:
    for budget in (50, 400, 5000):
        it, ev = hsj_schedule(budget)
        assert it >= 1 and 10 <= ev <= 100


def test_privacy_flags_an_overfit_model_and_passes_a_regularized_one(lr_model, adult_test, adult_train) -> None:
    settings = {"privacy": {"sample_size": 600, "attack_model": "rf", "max_auc": 0.6}}
    ok = get_check("privacy").run(context(lr_model, adult_test, checks=settings, train=adult_train))
    assert ok.passed and 0.35 < ok.measured["membership_auc"] < 0.6
    # a memorizing forest on numeric features only (every training row has a unique score)
    small = adult_train.head(1000)
    cols = ADULT_NUMERIC

    class Memorizer:
        classes_ = np.array([0, 1])
        feature_names_in_ = np.asarray(ADULT_FEATURES, dtype=object)

        def __init__(self, frame: pd.DataFrame) -> None:
            self.rf = RandomForestClassifier(n_estimators=20, bootstrap=False, max_features=None, random_state=0)
            self.rf.fit(frame[cols].to_numpy(float), frame[ADULT_TARGET])

        def predict_proba(self, X):
            return self.rf.predict_proba(pd.DataFrame(X)[cols].to_numpy(float))

        def predict(self, X):
            return self.rf.predict(pd.DataFrame(X)[cols].to_numpy(float))

    mem = Memorizer(small)
    settings = {"privacy": {"sample_size": 2000, "attack_model": "rf", "max_auc": 0.6}}
    bad = get_check("privacy").run(context(mem, adult_test, checks=settings, train=small))
    assert not bad.passed and bad.measured["membership_auc"] > 0.6
    assert bad.evidence["attack_model_type"] == "rf"


def test_supply_chain_on_a_real_project(gated) -> None:
    p, ref, _ = gated
    checks = {"supply_chain": {"require_clean_scan": True, "require_dependencies": True}}
    mv = p.get_model(ref)
    pol = load_policy({**POLICY, "checks": checks})
    ctx = CheckContext(project=p, ref=ref, model_version=mv, model=None, policy=pol, data=pd.DataFrame(),
                       target=ADULT_TARGET, features=pd.DataFrame(), y_true=np.zeros(0), y_pred=np.zeros(0),
                       y_score=None, task="classification", positive_label=1, train_data=None)
    res = get_check("supply_chain").run(ctx)
    assert res.measured["digest_matches"] is True and res.measured["dependencies_recorded"] > 10
    assert res.measured["scan_clean"] is bool(p.attachments(ref, "scan") and p.attachments(ref, "scan")[-1]["clean"])
    p.attach(ref, "scan", {"schema_version": 1, "clean": False, "max_severity": "critical"})
    dirty = get_check("supply_chain").run(ctx)
    assert not dirty.passed and "scan_clean" in dirty.evidence["failed"]
    p.attach(ref, "scan", {"schema_version": 1, "clean": True, "max_severity": "none"})
    assert get_check("supply_chain").run(ctx).passed
    signed = load_policy({**POLICY, "checks": {"supply_chain": {"require_signature": True}}})
    unsigned = get_check("supply_chain").run(CheckContext(**{**ctx.__dict__, "policy": signed}))
    assert not unsigned.passed and unsigned.measured["signature_valid"] is False
