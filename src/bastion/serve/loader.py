"""Load-time trust for the model server: a version is served only if the trust evaluator
(:func:`bastion.trust.evaluate`, purpose ``serve``) accepts it: digest, signature, clean scan, signed passed
gate for the alias's policy, and the audited alias event that points the alias at it.

:func:`load_trusted` evaluates once (every signature and attestation verified once), then loads through the
safe loaders.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.audit.refusals import record_refusal
from bastion.errors import BastionError, ConfigError, VerificationError
from bastion.flavors import ModelAdapter
from bastion.registry.refs import parse_ref
from bastion.serve.validation import (
    FeatureSpec,
    InputSchema,
    build_input_schema,
    feature_specs,
    signature_specs,
)
from bastion.trust import TrustReport, evaluate

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle
    from bastion.registry.records import ModelVersion

__all__ = ["LoadedModel", "TrustReport", "check_trust", "load_trusted", "sensitive_fields"]

log = logging.getLogger("bastion.serve")


def check_trust(project: ProjectHandle, ref: str, alias: str) -> tuple[ModelVersion, TrustReport]:
    """Resolve ``ref`` and judge it with the trust evaluator (purpose ``serve``); never raises for a failed rule."""
    mv = project.get_model(ref)
    return mv, evaluate(project, mv, alias, purpose="serve")


def sensitive_fields(project: ProjectHandle, dataset_ref: str) -> set[str]:
    """Columns the dataset's protection report marks as protected (anything but ``keep``)."""
    out: set[str] = set()
    docs: list[dict[str, Any]] = []
    try:
        docs = list(project.attachments(dataset_ref, "protection", subject_kind="dataset"))
    except BastionError:
        docs = []
    try:
        extra = project.get_dataset(dataset_ref).extra or {}
    except BastionError:
        extra = {}
    if isinstance(extra.get("protection"), dict):
        docs.append(extra["protection"])
    for doc in docs:
        for col in doc.get("columns") or []:
            if isinstance(col, dict) and col.get("operator") not in (None, "keep", "none"):
                out.add(str(col.get("column")))
        for name, op in (doc.get("operators") or {}).items():
            if op not in (None, "keep", "none"):
                out.add(str(name))
    return out


# ------------------------------------------------------------------------------------------ the model


def _linear_core(model: Any) -> tuple[Any, Any] | None:
    """``(preprocess, linear estimator)`` when the model is linear in its (transformed) features."""
    core = getattr(model, "base", None) if type(model).__name__ == "MitigatedClassifier" else model
    if core is None:
        return None
    steps = getattr(core, "steps", None)
    if steps:
        last = steps[-1][1]
        pre = core[:-1] if len(steps) > 1 else None
    else:
        last, pre = core, None
    if getattr(last, "coef_", None) is None:
        return None
    return pre, last


@dataclass
class LoadedModel:
    """A verified, loaded version: the estimator, its input validator and what the server needs."""

    name: str
    version: int
    digest: str
    alias: str
    model: Any
    schema: InputSchema
    trust: TrustReport
    dataset_ref: str
    loaded_at: float = field(default_factory=time.time)
    classes: list[Any] | None = None
    argmax_consistent: bool = False
    fast_proba: _LinearProba | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def matrix(self, rows: list[tuple[Any, ...]]) -> Any:
        """Model input for validated rows: a plain matrix unless the model was fitted on named columns.

        Flavor adapters take rows in the schema's (their declared) input order as a plain matrix.
        """
        named = getattr(self.model, "feature_names_in_", None) is not None and not isinstance(self.model, ModelAdapter)
        return self.schema.to_matrix(rows, frame=named)

    def predict(self, x: Any) -> dict[str, list[Any]]:
        """Labels, and the positive-class probability for binary classifiers.

        For estimators whose ``predict`` is by definition the arg-max of ``predict_proba`` the model is
        called once (half the per-request work); others get both calls. A binary [StandardScaler ->]
        LogisticRegression is computed by :class:`_LinearProba` (the same arithmetic, checked at load).
        """
        fast = self.fast_proba
        if fast is not None and type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == 2 \
                and x.shape[1] == fast.width:
            proba = fast(x)
            values = self.classes
            assert values is not None
            return {"predictions": [values[i] for i in np.argmax(proba, axis=1).tolist()],
                    "probabilities": np.round(proba[:, 1], 6).tolist()}
        if self.schema.all_numeric and not isinstance(self.model, ModelAdapter):
            import sklearn

            # every input passed the validator: finite numbers, no nulls; skip sklearn's second scan
            with sklearn.config_context(assume_finite=True):
                return self._predict(x)
        return self._predict(x)

    def _predict(self, x: Any) -> dict[str, list[Any]]:
        binary = self.classes is not None and len(self.classes) == 2 and hasattr(self.model, "predict_proba")
        if isinstance(self.model, ModelAdapter):  # one framework call gives labels and probabilities
            if not binary:
                return {"predictions": [_plain(v) for v in np.asarray(self.model.predict(x)).tolist()]}
            labels, proba = self.model.predict_with_proba(x)
            return {"predictions": [_plain(v) for v in np.asarray(labels).tolist()],
                    "probabilities": np.round(np.asarray(proba)[:, 1].astype(np.float64), 6).tolist()}
        if not binary:
            return {"predictions": np.asarray(self.model.predict(x)).tolist()}
        proba = np.asarray(self.model.predict_proba(x))
        if self.argmax_consistent:
            values = self.classes  # plain Python values (set at load)
            assert values is not None
            return {"predictions": [values[i] for i in np.argmax(proba, axis=1).tolist()],
                    "probabilities": np.round(proba[:, 1].astype(np.float64), 6).tolist()}
        labels = np.asarray(self.model.predict(x))
        return {"predictions": [_plain(v) for v in labels],
                "probabilities": np.round(proba[:, 1].astype(np.float64), 6).tolist()}

    def explain(self, x: Any) -> dict[str, Any]:
        """Per-row feature contributions (coefficient x transformed value) of a linear model."""
        lin = _linear_core(self.model)
        if lin is None:
            raise ConfigError(f"{self.ref} is not a linear model; explanations cover linear models only.")
        pre, est = lin
        z = pre.transform(x) if pre is not None else x
        if hasattr(z, "toarray"):
            z = z.toarray()
        z = np.asarray(z, dtype=np.float64)
        coef = np.asarray(est.coef_, dtype=np.float64).reshape(-1, z.shape[1])[0]
        names: list[str]
        try:
            names = [str(n) for n in (pre.get_feature_names_out() if pre is not None else self.schema.features)]
        except (AttributeError, ValueError):
            names = [f"x{i}" for i in range(z.shape[1])]
        intercept = float(np.ravel(getattr(est, "intercept_", [0.0]))[0])
        contrib = z * coef
        rows = []
        for r in contrib:
            top = np.argsort(-np.abs(r))  # every feature, largest effect first
            rows.append({"intercept": round(intercept, 6), "score": round(float(r.sum() + intercept), 6),
                         "contributions": {names[i]: round(float(r[i]), 6) for i in top}})
        note = "log-odds contributions of the base model (before fairness thresholds)" if \
            type(self.model).__name__ == "MitigatedClassifier" else "contributions to the decision function"
        return {"explanations": rows, "method": "linear", "note": note}


class _LinearProba:
    """``predict_proba`` of a binary LogisticRegression, optionally behind a StandardScaler, as scikit-learn
    computes it (the same numpy operations on the same arrays, in the same order: subtract the mean, divide by
    the scale, ``@ coef_.T + intercept_``, ``scipy.special.expit``, stack ``[1 - p, p]``), without its
    per-call checks (fitted? namespace? feature names? finite? dtype?) that cost more than the arithmetic for a
    single row. The server's validator has already made the input a finite float64 matrix of the right width.
    Used only when :func:`_linear_proba` found it equal, bit for bit, to the estimator's own answer."""

    __slots__ = ("coef_t", "intercept", "mean", "scale", "width")

    def __init__(self, mean: Any, scale: Any, coef: Any, intercept: Any) -> None:
        self.mean = mean
        self.scale = scale
        self.coef_t = coef.T
        self.intercept = intercept
        self.width = int(coef.shape[1])

    def __call__(self, x: Any) -> Any:
        from scipy.special import expit

        if self.mean is not None:
            x = x - self.mean
        if self.scale is not None:
            x = x / self.scale if self.mean is None else np.divide(x, self.scale, out=x)
        p = x @ self.coef_t + self.intercept
        p = p.reshape(-1)
        expit(p, out=p)
        return np.stack([1 - p, p], axis=1)


def _linear_proba(model: Any) -> _LinearProba | None:
    """The fast path for ``model`` when it is exactly a binary ``LogisticRegression``, alone or as the last
    step of a ``Pipeline`` of itself or of ``StandardScaler`` then itself (no subclasses), and gives the same
    probabilities to the last bit on probe rows (one row and batches); else None."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scaler: Any = None
    if type(model) is Pipeline:
        steps = [step for _, step in model.steps]
        if len(steps) == 2 and type(steps[0]) is StandardScaler:
            scaler = steps[0]
        elif len(steps) != 1:
            return None
        lr = steps[-1]
    else:
        lr = model
    if type(lr) is not LogisticRegression:
        return None
    coef, intercept, classes = (getattr(lr, a, None) for a in ("coef_", "intercept_", "classes_"))
    if coef is None or intercept is None or classes is None or len(classes) != 2:
        return None
    coef, intercept = np.asarray(coef), np.asarray(intercept)
    if coef.ndim != 2 or coef.shape[0] != 1 or coef.dtype != np.float64 or intercept.shape != (1,):
        return None
    mean = scale = None
    center = np.zeros(coef.shape[1])
    spread = np.ones(coef.shape[1])
    if scaler is not None:
        if getattr(scaler, "with_mean", False):
            mean = np.asarray(scaler.mean_, dtype=np.float64)
            center = mean
        if getattr(scaler, "with_std", False) and getattr(scaler, "scale_", None) is not None:
            scale = np.asarray(scaler.scale_, dtype=np.float64)
            spread = scale
        for a in (mean, scale):
            if a is not None and a.shape != (coef.shape[1],):
                return None
    fast = _LinearProba(mean, scale, coef, intercept)
    rng = np.random.default_rng(0)
    try:
        for n in (1, 3, 64):
            probe = center + spread * rng.normal(0, 2, size=(n, coef.shape[1]))
            if not np.array_equal(fast(probe), np.asarray(model.predict_proba(probe))):
                return None
    except Exception:  # any trouble: the estimator's own path
        return None
    return fast


# Estimators whose predict() is exactly classes_[argmax(predict_proba())] (sklearn's own definition).
_ARGMAX_CONSISTENT = frozenset({
    "LogisticRegression", "LogisticRegressionCV", "RandomForestClassifier", "ExtraTreesClassifier",
    "DecisionTreeClassifier", "ExtraTreeClassifier", "GradientBoostingClassifier",
    "HistGradientBoostingClassifier", "GaussianNB", "MultinomialNB", "BernoulliNB", "MLPClassifier",
})


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _argmax_consistent(model: Any) -> bool:
    steps = getattr(model, "steps", None)
    last = steps[-1][1] if steps else model
    return type(last).__name__ in _ARGMAX_CONSISTENT and type(last).__module__.startswith("sklearn.")


def _input_features(model: Any, dv: Any, target: str | None) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    cols = [str(f["name"]) for f in dv.schema if str(f["name"]) != target]
    n = getattr(model, "n_features_in_", None)
    if n is not None and n != len(cols):
        raise ConfigError(
            f"The model takes {n} unnamed inputs but its training dataset {dv.ref} has {len(cols)} columns besides "
            f"the target ({target or 'unknown'}); cannot tell which are inputs. Train on a DataFrame (feature names) "
            "or register the dataset with exactly the model's inputs and the target."
        )
    return cols


def _policy_target(project: ProjectHandle, ref: str | None = None) -> str | None:
    """The project policy's target; else the target column of the gate run that admitted version ``ref``."""
    from bastion.gates.policy import find_project_policy, load_policy

    path = find_project_policy(project)
    if path is not None:
        try:
            target = load_policy(path).target
        except BastionError:
            target = None
        if target:
            return target
    if ref is None:
        return None
    try:
        gates = project.attachments(ref, "gate")
    except BastionError:
        return None
    found = ((gates[-1].get("datasets") or {}).get("evaluation") or {}).get("target") if gates else None
    return str(found) if found else None


def load_trusted(
    project: ProjectHandle,
    ref: str,
    *,
    margin: float = 0.1,
    max_rows: int = 1000,
    max_depth: int = 8,
    target: str | None = None,
) -> LoadedModel:
    """Check and load the version ``ref`` (``NAME@ALIAS``) points at now.

    Raises
    ------
    VerificationError
        A load-time rule failed; the message lists every failed rule.
    ConfigError
        The version cannot be served (no training dataset, unsupported input types).
    """
    parsed = parse_ref(ref)
    if parsed.alias is None:
        raise ConfigError(f"Serve a model by alias (NAME@ALIAS, e.g. {parsed.name}@production); got {ref!r}.")
    mv, report = check_trust(project, ref, parsed.alias)
    if not report.ok:
        reasons = "; ".join(report.reasons)
        record_refusal(project, "serve.load.refused", ref, reasons, {"version": mv.ref, "digest": mv.digest})
        raise VerificationError(f"Refusing to serve {mv.ref} ({ref}): {reasons}.")
    from bastion.gates.run import load_gate_model

    model = load_gate_model(project, mv.ref)  # skops with trusted types; pickles only when scanned clean
    specs: list[FeatureSpec]
    if mv.datasets:
        dv = project.get_dataset(mv.datasets[0])
        dataset_ref = dv.ref
        feats = _input_features(model, dv, target or _policy_target(project, mv.ref))
        sens = sensitive_fields(project, dv.ref)
        specs = feature_specs(dv.schema, dv.stats, feats, margin=margin, sensitive=sorted(sens))
    else:  # registered without a dataset: validation from the input signature recorded at registration
        dataset_ref = ""
        specs = signature_specs(mv.ref, project.attachments(mv.ref, "flavor"))
    schema = build_input_schema(specs, model_name=mv.name, max_rows=max_rows, max_depth=max_depth)
    classes = getattr(model, "classes_", None)
    loaded = LoadedModel(
        name=mv.name, version=mv.version, digest=mv.digest, alias=parsed.alias, model=model, schema=schema,
        trust=report, dataset_ref=dataset_ref,
        classes=list(np.asarray(classes).tolist()) if classes is not None else None,
        argmax_consistent=_argmax_consistent(model),
        # BASTION_SKLEARN_PREDICT=1: scikit-learn's own predict_proba always (an escape hatch; the benchmark
        # uses it to show what the fast path is worth)
        fast_proba=None if os.environ.get("BASTION_SKLEARN_PREDICT") == "1" else _linear_proba(model),
    )
    log.info("loaded %s for %s after trust checks", mv.ref, ref)
    return loaded
