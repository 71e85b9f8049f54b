"""The one interface every model flavor implements (detect, validate, load safely, predict, input signature,
framework requirement) and the adapter every loaded non-scikit-learn model is served and gated through.

Built-in flavors live beside this module; third-party flavors load from the ``bastion.flavors`` entry points.
"""

from __future__ import annotations

import abc
import functools
import importlib
import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from bastion.errors import ConfigError

__all__ = [
    "Flavor",
    "InputSignature",
    "ModelAdapter",
    "TensorSpec",
    "dist_version",
    "inputs_summary",
    "require",
    "signature_summary",
]


@functools.lru_cache(maxsize=64)
def dist_version(dist: str) -> str:
    """The installed version of distribution ``dist``, or ``"unknown"``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise a :class:`ConfigError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(
            f"{what} needs the Python package '{module}', which is not installed. "
            f"Install Bastion's extra: pip install 'bastion-mlops[{extra}]'."
        ) from e


@dataclass(frozen=True)
class TensorSpec:
    """One declared model input: its name, element type (``float``, ``double``, ``int64``, ``string`` …) and shape
    (``None`` for a free dimension)."""

    name: str
    type: str
    shape: tuple[int | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "shape": list(self.shape)}


@dataclass(frozen=True)
class InputSignature:
    """What a model takes: named features in order (when the artifact names them), or declared tensors."""

    features: tuple[str, ...] | None = None
    n_features: int | None = None
    tensors: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features) if self.features is not None else None,
            "n_features": self.n_features,
            "tensors": [t.to_dict() for t in self.tensors],
            "outputs": [t.to_dict() for t in self.outputs],
        }


class ModelAdapter(abc.ABC):
    """A loaded model behind the scikit-learn estimator surface the gates and the server use.

    ``predict`` returns labels (classifiers, from ``classes_``) or values (regressors); ``predict_proba`` exists
    only for classifiers (``hasattr(model, "predict_proba")`` tells them apart, as with scikit-learn).
    ``feature_names_in_`` is set only when the artifact itself names its inputs. Inputs may be a DataFrame (its
    columns are taken by name when the model names them, in order otherwise) or a 2-D array in input order.
    Adapters hold immutable inference sessions: copying returns the same object.
    """

    flavor: ClassVar[str]
    #: element type a request value becomes when the model declares no typed tensors (boosters: numbers)
    input_type: ClassVar[str] = "double"
    #: scikit-learn estimator tag, so the gate and fairlearn treat the adapter as the estimator kind it is.
    _estimator_type: str

    def __init__(self, *, classes: list[Any] | None, feature_names: list[str] | None, n_features: int | None) -> None:
        self._classes = None if classes is None else np.asarray(classes)
        if feature_names is not None:
            self.feature_names_in_ = np.asarray(feature_names, dtype=object)
        if n_features is not None:
            self.n_features_in_ = int(n_features)
        self._estimator_type = "classifier" if classes is not None else "regressor"

    def bind_columns(self, columns: list[str]) -> None:
        """Name the inputs of a model whose artifact does not (the registry's record of its dataset columns)."""
        self.feature_names_in_ = np.asarray(columns, dtype=object)

    @property
    def classes_(self) -> np.ndarray:
        if self._classes is None:
            raise AttributeError("a regression model has no classes_")
        return self._classes

    @property
    def predict_proba(self) -> Any:
        if self._classes is None:
            raise AttributeError("a regression model has no predict_proba")
        return self._proba

    def predict(self, x: Any) -> np.ndarray:
        """Labels (classifiers) or values (regressors), one per row."""
        if self._classes is None:
            return np.asarray(self._raw(self._matrix(x)), dtype=np.float64).reshape(-1)
        labels, _ = self.predict_with_proba(x)
        return labels

    def _proba(self, x: Any) -> np.ndarray:
        _, proba = self.predict_with_proba(x)
        return proba

    def predict_with_proba(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and class probabilities (columns in ``classes_`` order) from one model call."""
        if self._classes is None:
            raise AttributeError("a regression model has no probabilities")
        proba = self._probabilities(self._raw(self._matrix(x)))
        return self._classes[np.argmax(proba, axis=1)], proba

    def _matrix(self, x: Any) -> Any:
        """Model input from a DataFrame or array: columns by name when the model names them."""
        names = getattr(self, "feature_names_in_", None)
        if hasattr(x, "columns"):
            if names is not None:
                missing = [str(n) for n in names if n not in x.columns]
                if missing:
                    raise ValueError(f"the input lacks the model's features {missing}")
                x = x[list(names)]
            return x.to_numpy(dtype=np.float64, na_value=np.nan)
        arr = np.asarray(x, dtype=np.float64)
        return arr.reshape(1, -1) if arr.ndim == 1 else arr

    @abc.abstractmethod
    def _raw(self, x: Any) -> Any:
        """The framework's own output for the prepared input."""

    def _probabilities(self, raw: Any) -> np.ndarray:
        """``(n, n_classes)`` probabilities from the raw output (a positive-class column becomes two)."""
        p = np.asarray(raw, dtype=np.float64)
        if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
            pos = p.reshape(-1)
            return np.column_stack([1.0 - pos, pos])
        return p

    def __deepcopy__(self, memo: dict[int, Any]) -> ModelAdapter:
        return self

    def __copy__(self) -> ModelAdapter:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(f"a loaded {self.flavor} model is not pickled; load it from the registry")

    def __sklearn_is_fitted__(self) -> bool:
        return True


@dataclass(frozen=True)
class FlavorInfo:
    """What registration records about an artifact's flavor (stored with the version as the ``flavor`` document)."""

    flavor: str
    framework: str
    requirements: tuple[str, ...] = ()
    signature: InputSignature | None = None
    task: str | None = None
    classes: tuple[Any, ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: dataset columns an unnamed-input model takes, in order, as resolved at registration (when unambiguous)
    input_columns: tuple[str, ...] | None = None
    #: request fields (name, element type) of a version registered without a dataset, from its signature
    inputs: tuple[dict[str, str], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "flavor": self.flavor,
            "framework": self.framework,
            "requirements": list(self.requirements),
            "signature": self.signature.to_dict() if self.signature is not None else None,
            "task": self.task,
            "classes": [c.item() if hasattr(c, "item") else c for c in self.classes] if self.classes else None,
            "notes": list(self.notes),
            "input_columns": list(self.input_columns) if self.input_columns is not None else None,
            "inputs": [dict(f) for f in self.inputs] if self.inputs is not None else None,
        }


class Flavor(abc.ABC):
    """One model format: how to recognise it, load it without running code it carries, and what it needs.

    Subclasses set ``name`` (stored as the version's flavor), ``extra`` (the pip extra installing the framework,
    or ``""``) and ``servable`` (whether gates and the server may load it).
    """

    name: ClassVar[str]
    extra: ClassVar[str] = ""
    servable: ClassVar[bool] = True
    #: distribution whose version is recorded as the framework requirement
    dist: ClassVar[str] = ""

    @abc.abstractmethod
    def detect(self, path: Path, head: bytes) -> bool:
        """True when the file at ``path`` (first bytes ``head``) is this flavor's format, by content."""

    @abc.abstractmethod
    def load(self, data: bytes, *, what: str, trusted: list[str] | None = None) -> Any:
        """The model from the artifact's bytes, without executing code from it; raises a BastionError otherwise."""

    def info(self, model: Any) -> FlavorInfo:
        """Framework, requirement and input signature of a loaded model."""
        return FlavorInfo(
            flavor=self.name, framework=self.framework(), requirements=self.requirements(),
            signature=self.signature(model), task=_task(model), classes=_classes(model),
        )

    def framework(self) -> str:
        return f"{self.dist}=={dist_version(self.dist)}" if self.dist else "unknown"

    def requirements(self) -> tuple[str, ...]:
        return (self.framework(),) if self.dist else ()

    def signature(self, model: Any) -> InputSignature | None:
        names = getattr(model, "feature_names_in_", None)
        n = getattr(model, "n_features_in_", None)
        return InputSignature(
            features=tuple(str(x) for x in names) if names is not None else None,
            n_features=int(n) if n is not None else (len(names) if names is not None else None),
        )


def _task(model: Any) -> str | None:
    if model is None:
        return None
    return "classification" if hasattr(model, "predict_proba") and hasattr(model, "classes_") else "regression"


def _classes(model: Any) -> tuple[Any, ...] | None:
    c = getattr(model, "classes_", None) if model is not None else None
    return tuple(np.asarray(c).tolist()) if c is not None else None


def inputs_summary(fields: list[dict[str, Any]] | None) -> str:
    """One line for people: the request fields of a version registered without a dataset, or ``""``."""
    if not fields:
        return ""
    shown = ", ".join(f"{f.get('name')}: {f.get('type')}" for f in fields[:12])
    return f"{len(fields)} fields from the model's signature (no dataset): {shown}" + (" …" if len(fields) > 12
                                                                                      else "")


def signature_summary(doc: dict[str, Any] | None) -> str:
    """One line for people: the named features, or the declared tensors, of a stored signature document."""
    if not doc:
        return "-"
    feats = doc.get("features")
    parts: list[str] = []
    if feats:
        parts.append(f"{len(feats)} named features: {', '.join(map(str, feats[:12]))}" + (" …" if len(feats) > 12
                                                                                           else ""))
    elif doc.get("n_features") is not None:
        parts.append(f"{doc['n_features']} features in the training dataset's column order")
    for t in doc.get("tensors") or []:
        shape = "x".join("?" if d is None else str(d) for d in t.get("shape") or [])
        parts.append(f"input {t.get('name')}: {t.get('type')}[{shape}]")
    for t in doc.get("outputs") or []:
        parts.append(f"output {t.get('name')}: {t.get('type')}")
    return "; ".join(parts) or "-"
