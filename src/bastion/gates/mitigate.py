"""Fairness mitigation: wrap fairlearn's ThresholdOptimizer or ExponentiatedGradient around a registered model.

The result is a ``MitigatedClassifier`` holding only plain arrays and the base estimators, so it saves
with skops and loads without unpickling; it is registered as a new version whose parent is the input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from bastion.errors import ConfigError, DataError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["MITIGATED_TYPE", "MitigatedClassifier", "fit_mitigation", "mitigate"]

log = logging.getLogger("bastion.gates")

MITIGATED_TYPE = "bastion.gates.mitigate.MitigatedClassifier"
_OPS = {">": 0.0, "<": 1.0}


def _group_keys(frame: pd.DataFrame, sensitive: Sequence[str]) -> np.ndarray:
    parts = [frame[c].astype("object").where(frame[c].notna(), "(missing)").astype(str) for c in sensitive]
    key = parts[0].to_numpy(dtype=object)
    for p in parts[1:]:
        key = key + "|" + p.to_numpy(dtype=object)
    out: np.ndarray = key.astype(str)
    return out


def _uniform(frame: pd.DataFrame) -> np.ndarray:
    """A per-row number in [0, 1) derived from the row's content: the randomized rule, made repeatable.

    fairlearn draws fresh random numbers per call; hashing the row keeps a served prediction stable for
    the same input and independent of batch composition, with the same distribution.
    """
    h = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy(dtype=np.uint64)
    u: np.ndarray = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return u


class MitigatedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fairness-mitigated binary classifier (predict/predict_proba over a pandas DataFrame).

    ``method="threshold"``: per-group randomized thresholds on the base model's positive-class score,
    stored as rows ``[p0, threshold0, op0, p1, threshold1, op1]`` (op 0 is ``>``, 1 is ``<``).
    ``method="expgrad"``: a weighted mixture of estimators fitted on the base pipeline's features.
    Over an ONNX/XGBoost/LightGBM base the version is stored as a reference to the base's artifact plus the
    thresholds (:mod:`bastion.flavors.mitigated`); ``base_flavor_`` and ``base_ref_`` say which, once loaded.
    """

    base_flavor_: str | None = None
    base_ref_: str | None = None

    def __init__(self, base: Any = None, method: str = "threshold", sensitive: list[str] | None = None,
                 groups: list[str] | None = None, params: np.ndarray | None = None,
                 preprocessor: Any = None, estimators: list[Any] | None = None,
                 weights: np.ndarray | None = None, classes: np.ndarray | None = None,
                 feature_names: np.ndarray | None = None, base_features: np.ndarray | None = None) -> None:
        self.base = base
        self.method = method
        self.sensitive = sensitive
        self.groups = groups
        self.params = params
        self.preprocessor = preprocessor
        self.estimators = estimators
        self.weights = weights
        self.classes = classes
        self.feature_names = feature_names
        self.base_features = base_features

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object if self.classes is None else None)

    @property
    def feature_names_in_(self) -> np.ndarray:
        return np.asarray(self.feature_names, dtype=object)

    def fit(self, X: Any, y: Any = None) -> MitigatedClassifier:
        return self  # fitted by fit_mitigation; present for the estimator API

    def _base_columns(self, X: pd.DataFrame) -> list[str]:
        cols = self.base_features if self.base_features is not None else self.feature_names
        return list(cols) if cols is not None else list(X.columns)

    def _positive_pmf(self, X: pd.DataFrame) -> np.ndarray:
        X = pd.DataFrame(X)
        if self.method == "threshold":
            score = np.asarray(self.base.predict_proba(X[self._base_columns(X)]))[:, 1]
            keys = _group_keys(X, self.sensitive or [])
            table = {g: i for i, g in enumerate(self.groups or [])}
            pmf = (score > 0.5).astype(np.float64)  # groups unseen at fit time keep the base model's decision
            params = np.asarray(self.params, dtype=np.float64)
            for g, i in table.items():
                m = keys == g
                if not m.any():
                    continue
                p0, t0, o0, p1, t1, o1 = params[i]
                s = score[m]
                d0 = np.where(o0 == 0.0, s > t0, s < t0)
                d1 = np.where(o1 == 0.0, s > t1, s < t1)
                pmf[m] = p0 * d0 + p1 * d1
            return pmf
        if self.method == "expgrad":
            Z = self.preprocessor.transform(X[self._base_columns(X)])
            w = np.asarray(self.weights, dtype=np.float64)
            preds = np.column_stack([np.asarray(e.predict(Z), dtype=np.float64) for e in self.estimators or []])
            return preds @ w
        raise ConfigError(f"Unknown mitigation method {self.method!r}; expected 'threshold' or 'expgrad'.")

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.clip(self._positive_pmf(pd.DataFrame(X)), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        X = pd.DataFrame(X)
        p = self._positive_pmf(X)
        chosen = (_uniform(X) < p).astype(int)
        labels: np.ndarray = np.asarray(self.classes_)[chosen]
        return labels


class PrefitAdapter(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A loaded non-scikit-learn model (a flavor's predict adapter) as the prefit estimator fairlearn takes.

    Never fitted here: ``fit`` refuses, ``predict``/``predict_proba`` are the framework's own.
    """

    def __init__(self, adapter: Any = None) -> None:
        self.adapter = adapter

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.adapter.classes_)

    def fit(self, X: Any, y: Any = None) -> PrefitAdapter:
        raise TypeError("a registered model is mitigated as it is (prefit); it is never re-fitted")

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.adapter.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.adapter.predict_proba(X))

    def __sklearn_is_fitted__(self) -> bool:
        return True


def fit_mitigation(
    model: Any, train: pd.DataFrame, target: str, sensitive: Sequence[str], *,
    method: Literal["threshold", "expgrad"] = "threshold", constraints: str = "demographic_parity",
    positive_label: Any = None, random_state: int = 0,
) -> MitigatedClassifier:
    """Fit a mitigation of ``model`` on ``train`` for the intersection of the ``sensitive`` columns."""
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient, TruePositiveRateParity

    missing = [c for c in [target, *sensitive] if c not in train.columns]
    if missing:
        raise DataError(f"The training data lacks columns {missing}; columns are {list(train.columns)}.")
    if not sensitive:
        raise ConfigError("Mitigation needs at least one sensitive attribute (--sensitive COLUMN).")
    classes = np.asarray(getattr(model, "classes_", np.array([0, 1])))
    if len(classes) != 2:
        raise ConfigError(f"Mitigation supports binary classifiers; the model has {len(classes)} classes.")
    pos = classes[1] if positive_label is None else positive_label
    names = getattr(model, "feature_names_in_", None)
    feats = list(names) if names is not None else [c for c in train.columns if c != target]
    all_feats = feats + [c for c in sensitive if c not in feats]  # the rule needs the sensitive columns
    train = train[train[target].notna()].reset_index(drop=True)
    X = train[feats]
    y = (train[target].to_numpy() == pos).astype(int)
    keys = _group_keys(train, sensitive)
    if method == "threshold":
        if constraints not in {"demographic_parity", "equalized_odds", "true_positive_rate_parity",
                               "false_positive_rate_parity"}:
            raise ConfigError(f"Unknown constraint {constraints!r} for ThresholdOptimizer.")
        from bastion.flavors import ModelAdapter

        prefit = PrefitAdapter(model) if isinstance(model, ModelAdapter) else model
        to = ThresholdOptimizer(estimator=prefit, constraints=constraints, prefit=True,
                                predict_method="predict_proba", objective="accuracy_score")
        to.fit(X, y, sensitive_features=keys)
        groups, rows = [], []
        for g, b in to.interpolated_thresholder_.interpolation_dict.items():
            op0, op1 = b["operation0"], b["operation1"]
            groups.append(str(g))
            rows.append([float(b["p0"]), float(op0._threshold), _OPS[op0._operator],
                         float(b["p1"]), float(op1._threshold), _OPS[op1._operator]])
        return MitigatedClassifier(base=model, method="threshold", sensitive=list(sensitive), groups=groups,
                                   params=np.asarray(rows, dtype=np.float64), classes=classes,
                                   feature_names=np.asarray(all_feats, dtype=object),
                                   base_features=np.asarray(feats, dtype=object))
    if method == "expgrad":
        steps = getattr(model, "steps", None)
        if not steps or len(steps) < 2:
            raise ConfigError("ExponentiatedGradient needs a scikit-learn Pipeline (preprocessing + estimator); "
                              "mitigate ONNX, XGBoost and LightGBM models with --method threshold.")
        pre = clone(model[:-1]).fit(X, y)
        Z = pre.transform(X)
        if hasattr(Z, "toarray"):
            Z = Z.toarray()
        cons = {"demographic_parity": DemographicParity, "equalized_odds": EqualizedOdds,
                "true_positive_rate_parity": TruePositiveRateParity}.get(constraints)
        if cons is None:
            raise ConfigError(f"Unknown constraint {constraints!r} for ExponentiatedGradient.")
        eg = ExponentiatedGradient(clone(model[-1]), constraints=cons(), max_iter=10)
        np.random.seed(random_state)
        eg.fit(Z, y, sensitive_features=keys)
        w = np.asarray(eg.weights_, dtype=np.float64)
        keep = w > 0
        estimators = [e for e, k in zip(list(eg.predictors_), keep, strict=True) if k]
        return MitigatedClassifier(method="expgrad", sensitive=list(sensitive), preprocessor=pre,
                                   estimators=estimators, weights=w[keep] / w[keep].sum(), classes=np.array([0, 1])
                                   if positive_label is None and set(classes.tolist()) == {0, 1} else classes,
                                   feature_names=np.asarray(all_feats, dtype=object),
                                   base_features=np.asarray(feats, dtype=object))
    raise ConfigError(f"Unknown mitigation method {method!r}; expected 'threshold' or 'expgrad'.")


def mitigation_spec(mitigated: MitigatedClassifier, *, base_ref: str, base_digest: str, base_flavor: str) -> Any:
    """The stored form of a threshold mitigation over a flavor adapter: the base's ref and digest plus the table."""
    from bastion.flavors.mitigated import MitigationSpec

    if mitigated.method != "threshold":
        raise ConfigError(f"Only threshold mitigations are stored by reference; got {mitigated.method!r}.")

    def plain(v: Any) -> Any:
        return v.item() if hasattr(v, "item") else v

    return MitigationSpec(
        base_ref=base_ref, base_digest=base_digest, base_flavor=base_flavor, method="threshold",
        sensitive=tuple(mitigated.sensitive or ()), groups=tuple(mitigated.groups or ()),
        params=tuple(tuple(float(x) for x in row) for row in np.asarray(mitigated.params, dtype=np.float64)),
        classes=tuple(plain(c) for c in np.asarray(mitigated.classes).tolist()),
        feature_names=tuple(str(n) for n in np.asarray(mitigated.feature_names, dtype=object)),
        base_features=tuple(str(n) for n in np.asarray(mitigated.base_features, dtype=object)),
    )


def mitigate(
    project: ProjectHandle, ref: str, *, method: Literal["threshold", "expgrad"], data: pd.DataFrame | str,
    target: str, sensitive: Sequence[str], constraints: str = "demographic_parity",
    positive_label: Any = None, name: str | None = None,
) -> Any:
    """Mitigate model version ``ref`` and register the result as a new version with ``parent=ref``."""
    from bastion.gates.run import load_gate_model, read_frame

    mv = project.get_model(ref)
    model = load_gate_model(project, mv.ref)
    train, info = read_frame(project, data)
    mitigated = fit_mitigation(model, train, target, sensitive, method=method, constraints=constraints,
                               positive_label=positive_label)
    datasets = list(mv.datasets)
    if info.get("source") and ":" in str(info["source"]) and str(info["source"]) not in datasets:
        datasets.append(str(info["source"]))
    desc = (mv.description + "\n\n" if mv.description else "") + (
        f"Fairness-mitigated version of {mv.ref} ({method}, {constraints}, sensitive: {', '.join(sensitive)})."
    )
    kwargs: dict[str, Any] = {
        "name": name or mv.name, "datasets": datasets, "parent": mv.ref, "description": desc,
        "params": {**mv.params, "mitigation.method": method, "mitigation.constraints": constraints,
                   "mitigation.sensitive": list(sensitive)},
        "tags": {**mv.tags, "mitigated_from": mv.ref},
    }
    from bastion.flavors import ModelAdapter

    if isinstance(model, ModelAdapter):  # never re-serialise the framework's model: refer to its artifact
        import tempfile
        from pathlib import Path

        spec = mitigation_spec(mitigated, base_ref=mv.ref, base_digest=mv.digest, base_flavor=mv.flavor)
        with tempfile.TemporaryDirectory(prefix="bastion-mitigate-") as tmp:
            path = Path(tmp) / f"{mv.name}-mitigated.json"
            path.write_bytes(spec.to_json())
            path.chmod(0o600)
            new = project.log_model(path, **kwargs)
    else:
        new = project.log_model(mitigated, **kwargs)
    project.audited("gate.mitigate", new.ref, {"parent": mv.ref, "method": method, "constraints": constraints,
                                                "sensitive": list(sensitive)})
    return new
