"""Inputs from a model's own signature, for a version registered without a training dataset: which named
fields a request carries and of which element type, and a generated probe batch that proves the model runs.

Names come from the operator (``--feature-names``), else from the artifact (XGBoost/LightGBM feature names, the
inputs of a multi-input ONNX graph), else they are positional: ``f0 … fN-1`` in the graph's declared order.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.errors import BastionError, DataError
from bastion.flavors.interface import ModelAdapter

__all__ = ["PROBE_ROWS", "InputField", "input_fields", "probe", "read_feature_names"]

PROBE_ROWS = 5
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_MAX_FEATURES = 100_000
#: Element types a request field may carry, by the model's declared tensor element type.
NUMERIC = frozenset({"float", "double", "float16", "int64", "int32", "int16", "int8", "uint8", "uint16", "uint32",
                     "uint64"})
TEXT = frozenset({"string"})
BOOL = frozenset({"bool"})


@dataclass(frozen=True)
class InputField:
    """One request field of a version served from its signature: its name and the model's element type."""

    name: str
    type: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type}


def read_feature_names(names: Sequence[str]) -> list[str]:
    """Check operator-given feature names: non-empty, printable, unique, at most 100,000."""
    out = [str(n) for n in names]
    if not out:
        raise DataError("--feature-names is empty; give the model's input names in order, comma-separated.")
    if len(out) > _MAX_FEATURES:
        raise DataError(f"--feature-names gives {len(out)} names; at most {_MAX_FEATURES} are allowed.")
    for n in out:
        if not _NAME.fullmatch(n) or n != n.strip():
            raise DataError(f"Feature name {n[:60]!r} is not allowed: names are 1-200 printable characters without "
                            "leading or trailing spaces.")
    dupes = sorted({n for n in out if out.count(n) > 1}) if len(set(out)) != len(out) else []
    if dupes:
        raise DataError(f"--feature-names repeats {dupes[:5]}; each input needs its own name.")
    return out


def input_fields(model: Any, feature_names: Sequence[str] | None = None) -> tuple[InputField, ...]:
    """The request fields of ``model`` from its signature alone; :class:`DataError` says why there are none.

    A single 2-D tensor input ``[batch, N]`` gives N fields of its element type; a 1-D one gives one field; several
    inputs (each one value per row) are fields named after the inputs. Boosters give their N features as numbers.
    """
    if not isinstance(model, ModelAdapter):
        raise DataError("only ONNX, XGBoost, LightGBM and plugin-flavor models declare their inputs; a scikit-learn "
                        "model is registered with its training dataset (--dataset NAME:VERSION)")
    given = read_feature_names(feature_names) if feature_names is not None else None
    own = getattr(model, "feature_names_in_", None)
    own_names = [str(n) for n in own] if own is not None else None
    tensors = getattr(model, "inputs", None)
    if tensors is not None and len(tensors) > 1:  # an ONNX graph whose inputs are the features
        wide = [t.name for t in tensors if not _one_per_row(t.shape)]
        if wide:
            raise DataError(f"the graph's inputs {wide} take more than one value per row; the server takes one value "
                            "per named input (or one 2-D tensor [batch, features])")
        if given is not None and given != [t.name for t in tensors]:
            raise DataError(f"the graph names its inputs {[t.name for t in tensors][:12]}; --feature-names must not "
                            "rename them (leave it out)")
        return tuple(InputField(t.name, t.type) for t in tensors)
    if tensors is not None:
        t = tensors[0]
        if len(t.shape) == 2:
            n = t.shape[1]
        elif len(t.shape) == 1:
            n = 1
        else:
            raise DataError(f"its input '{t.name}' has shape {_shape_text(t.shape)}; the server takes tabular input, "
                            "one 2-D tensor [batch, features] (register other models with --flavor file)")
        elem = t.type
    else:
        n = getattr(model, "n_features_in_", None)
        elem = str(getattr(model, "input_type", "double"))
    if own_names is not None:
        if given is not None and given != own_names:
            raise DataError(f"the model file names its features {own_names[:12]}{' …' if len(own_names) > 12 else ''}; "
                            "--feature-names must match them in order (or be left out)")
        return tuple(InputField(name, elem) for name in own_names)
    if given is not None:
        if n is not None and len(given) != n:
            raise DataError(f"the model takes {n} input features but --feature-names gives {len(given)}")
        return tuple(InputField(name, elem) for name in given)
    if n is None:
        where = f"its input '{tensors[0].name}' " if tensors is not None else "it "
        raise DataError(f"{where}does not fix the number of features (shape "
                        f"{_shape_text(tensors[0].shape) if tensors is not None else 'unknown'}); name them with "
                        "--feature-names a,b,c")
    if not 1 <= n <= _MAX_FEATURES:
        raise DataError(f"the model declares {n} input features; between 1 and {_MAX_FEATURES} are supported")
    return tuple(InputField(f"f{i}", elem) for i in range(n))


def _one_per_row(shape: tuple[int | None, ...]) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _zeros(elem: str, rows: int) -> np.ndarray:
    if elem in TEXT:
        return np.array([""] * rows, dtype=object)
    if elem in BOOL:
        return np.zeros(rows, dtype=bool)
    return np.zeros(rows, dtype=np.float64)


def probe_input(fields: Sequence[InputField], rows: int = PROBE_ROWS) -> Any:
    """What the server hands the model for ``rows`` zero-valued requests: a float matrix when every field is
    numeric, else a DataFrame with the field names."""
    if all(f.type in NUMERIC for f in fields):
        return np.zeros((rows, len(fields)), dtype=np.float64)
    import pandas as pd

    return pd.DataFrame({f.name: _zeros(f.type, rows) for f in fields})


def probe(model: Any, fields: Sequence[InputField], rows: int = PROBE_ROWS) -> None:
    """Run ``model`` on a generated batch matching ``fields``; :class:`DataError` says why it did not."""
    x = probe_input(fields, rows)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = np.asarray(model.predict(x))
            if hasattr(model, "predict_proba"):
                proba = np.asarray(model.predict_proba(x))
                if proba.ndim != 2 or proba.shape[0] != rows:
                    raise ValueError(f"predict_proba gave shape {proba.shape} for {rows} rows")
                if not np.all(np.isfinite(proba)):
                    raise ValueError("predict_proba gave values that are not finite numbers")
    except BastionError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0][:300] if str(e) else ""
        raise DataError(f"it did not run on a generated batch of {rows} rows matching its input signature: "
                        f"{type(e).__name__}: {msg}") from e
    if pred.shape[:1] != (rows,):
        raise DataError(f"it returned {pred.shape[0] if pred.ndim else 0} predictions for a generated batch of "
                        f"{rows} rows")
