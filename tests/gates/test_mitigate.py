"""Mitigation: ThresholdOptimizer and ExponentiatedGradient wrapped, registered with parent, loadable."""

from __future__ import annotations

import pytest

from bastion.demo.data import ADULT_FEATURES, ADULT_TARGET
from bastion.gates.fairness import compute_fairness
from bastion.gates.mitigate import fit_mitigation, mitigate
from bastion.gates.run import load_gate_model


def _dpd(model, df) -> float:
    pred = model.predict(df[ADULT_FEATURES + [c for c in ("sex", "race") if c not in ADULT_FEATURES]])
    return compute_fairness(df[ADULT_TARGET].to_numpy(), pred, df[["sex"]]).get("sex").disparities[
        "demographic_parity_difference"]


def test_threshold_mitigation_registers_a_fairer_child(gated, adult_train, adult_test) -> None:
    p, ref, _ = gated
    new = mitigate(p, ref, method="threshold", data=adult_train, target=ADULT_TARGET, sensitive=["sex"])
    assert new.parent == ref and new.params["mitigation.method"] == "threshold"
    loaded = load_gate_model(p, new.ref)
    base = p.load_model(ref)
    assert _dpd(loaded, adult_test) < 0.05 < _dpd(base, adult_test)
    again = loaded.predict(adult_test[ADULT_FEATURES].head(50))
    assert (again == loaded.predict(adult_test[ADULT_FEATURES].head(50))).all()  # repeatable


def test_expgrad_mitigation_reduces_disparity(lr_model, adult_train, adult_test) -> None:
    small = adult_train.head(500)
    m = fit_mitigation(lr_model, small, ADULT_TARGET, ["sex"], method="expgrad")
    assert _dpd(m, adult_test) < _dpd(lr_model, adult_test)
    assert m.predict_proba(adult_test[ADULT_FEATURES].head(5)).shape == (5, 2)


def test_unknown_method_is_refused(lr_model, adult_train) -> None:
    from bastion.errors import ConfigError

    with pytest.raises(ConfigError, match="threshold"):
        fit_mitigation(lr_model, adult_train, ADULT_TARGET, ["sex"], method="magic")  # type: ignore[arg-type]


def test_the_registry_trusts_exactly_bastions_mitigated_type() -> None:
    from bastion.gates.mitigate import MITIGATED_TYPE
    from bastion.registry.flavors import BASTION_TRUSTED_TYPES

    assert frozenset({MITIGATED_TYPE}) == BASTION_TRUSTED_TYPES
