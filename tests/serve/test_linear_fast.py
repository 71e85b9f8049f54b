"""The linear fast path: a binary LogisticRegression (alone, or behind a StandardScaler) answers exactly what
scikit-learn answers, bit for bit, and anything else keeps scikit-learn's own path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from bastion.serve.loader import _linear_proba

RNG = np.random.default_rng(7)
X = RNG.normal(3.0, 5.0, size=(400, 6)) * np.array([1, 10, 0.1, 1000, 1, 1e-3])
Y = (X[:, 0] + X[:, 1] / 10 - X[:, 3] / 1000 + RNG.normal(0, 1, 400) > 3).astype(int)


def _fit(model: Any, y: Any = Y) -> Any:
    return model.fit(X, y)


@pytest.mark.parametrize("make", [
    lambda: LogisticRegression(solver="liblinear"),
    lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    lambda: make_pipeline(StandardScaler(with_mean=False), LogisticRegression()),
    lambda: make_pipeline(StandardScaler(with_std=False), LogisticRegression(solver="liblinear")),
    lambda: Pipeline([("clf", LogisticRegression(solver="liblinear"))]),
    lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.01, fit_intercept=False)),
], ids=["lr", "scaler+lr", "no-mean", "no-std", "one-step", "no-intercept"])
def test_same_probabilities_and_labels_as_sklearn_to_the_last_bit(make: Any) -> None:
    model = _fit(make())
    fast = _linear_proba(model)
    assert fast is not None
    for x in (X[:1], X[17:18], X[:100], RNG.normal(0, 1e6, size=(5, 6)), np.zeros((3, 6)),
              np.full((2, 6), 1e300), np.full((2, 6), -1e300)):
        x = np.ascontiguousarray(x, dtype=np.float64)
        got, want = fast(x), model.predict_proba(x)
        assert np.array_equal(got, want), (got, want)
        labels = np.asarray(model.classes_)[np.argmax(got, axis=1)]
        assert np.array_equal(labels, model.predict(x))


def test_string_labels_come_out_as_the_estimator_labels() -> None:
    from bastion.serve.loader import LoadedModel

    model = _fit(make_pipeline(StandardScaler(), LogisticRegression()), np.where(Y == 1, "yes", "no"))
    fast = _linear_proba(model)
    assert fast is not None
    m = LoadedModel.__new__(LoadedModel)
    m.fast_proba, m.classes = fast, list(model.classes_)
    out = m.predict(np.ascontiguousarray(X[:50]))
    assert out["predictions"] == model.predict(X[:50]).tolist()
    assert out["probabilities"] == np.round(model.predict_proba(X[:50])[:, 1], 6).tolist()


@pytest.mark.parametrize("make", [
    lambda: RandomForestClassifier(n_estimators=3, random_state=0),
    lambda: make_pipeline(MinMaxScaler(), LogisticRegression()),
    lambda: make_pipeline(StandardScaler(), StandardScaler(), LogisticRegression()),
], ids=["forest", "other-scaler", "three-steps"])
def test_other_models_keep_sklearns_path(make: Any) -> None:
    assert _linear_proba(_fit(make())) is None


def test_multiclass_and_subclasses_keep_sklearns_path() -> None:
    assert _linear_proba(_fit(make_pipeline(StandardScaler(), LogisticRegression()), Y + (X[:, 2] > 0.3))) is None

    class Tweaked(LogisticRegression):
        pass

    assert _linear_proba(_fit(make_pipeline(StandardScaler(), Tweaked()))) is None


def test_an_estimator_that_answers_differently_keeps_its_own_path() -> None:
    """The probe at load is what decides: an estimator whose predict_proba is not the plain formula (here
    patched on the instance) is never replaced by it."""
    model = _fit(make_pipeline(StandardScaler(), LogisticRegression()))
    real = model.predict_proba
    model.predict_proba = lambda x: np.clip(real(x), 0.01, 0.99)
    assert _linear_proba(model) is None


def test_a_served_numeric_model_answers_the_same_with_and_without_the_fast_path(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through the trust checks and the validator: the benchmark's kind of model (30 numeric
    features, a LogisticRegression pipeline) loads with the fast path, ``BASTION_SKLEARN_PREDICT=1`` turns it
    off, and both give the same labels and probabilities for the same request."""
    import json

    from bastion.project import open_project
    from bastion.serve._sample import build_sample_project
    from bastion.serve.loader import load_trusted

    sample = build_sample_project(tmp_path / "proj", versions=1, n_features=30, rows=400, categorical=False,
                                  protect_email=False)
    frame = sample.frame[list(sample.features)].iloc[:40]
    rows = [{f: float(v) for f, v in r.items()} for r in frame.to_dict("records")]
    body = json.dumps({"instances": rows}).encode()
    p = open_project(sample.root)
    try:
        fast = load_trusted(p, "sample@production")
        monkeypatch.setenv("BASTION_SKLEARN_PREDICT", "1")
        slow = load_trusted(p, "sample@production")
    finally:
        p.close()
    assert fast.fast_proba is not None and slow.fast_proba is None
    answers = [m.predict(m.matrix(m.schema.parse(body))) for m in (fast, slow)]
    assert answers[0] == answers[1] and len(answers[0]["predictions"]) == 40

    def no_sklearn(*_: Any) -> Any:
        raise AssertionError("scikit-learn's predict_proba was called")

    monkeypatch.setattr(fast.model, "predict_proba", no_sklearn, raising=False)
    assert fast.predict(fast.matrix(fast.schema.parse(body))) == answers[1]  # the request took the fast path
