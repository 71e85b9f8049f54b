"""Input anomalies: an IsolationForest fit on the model's training dataset version, stored with
skops in the blob store, scoring logged inputs in chunks; share of anomalous inputs per window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bastion.errors import DataError, UnsafeArtifactError
from bastion.monitor.config import AnomalyConfig
from bastion.monitor.drift.interface import _jsonable_dict

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

    from bastion.protocols import ProjectHandle

__all__ = [
    "ATTACHMENT_KIND",
    "AnomalyModel",
    "AnomalyResult",
    "fit_anomaly_model",
    "load_anomaly_model",
    "save_anomaly_model",
    "score_anomalies",
]

log = logging.getLogger("bastion.monitor")
ATTACHMENT_KIND = "monitor_anomaly_model"
# Types a stored IsolationForest may contain; anything else in the file is refused.
_ALLOWED_TYPES = {
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.random._mt19937.MT19937",
    "numpy.random.mtrand.RandomState",
    "builtins.int",
    "builtins.float",
}


@dataclass(frozen=True)
class AnomalyModel:
    """The forest plus how raw inputs become its feature matrix."""

    forest: IsolationForest
    numeric: tuple[str, ...]
    categories: dict[str, list[str]]  # categorical column -> known categories (code = index)
    fill: dict[str, float]  # numeric column -> reference median, for missing values
    trained_on: str = ""
    # numeric column -> (low, high): the reference range widened by 10%. A forest scores points beyond
    # its training range like the extreme training points, so out-of-range inputs are flagged directly.
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    # numeric columns without a missing value in the reference: a missing input there is anomalous
    # (empty for models stored before this was recorded).
    complete: tuple[str, ...] = ()

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categories]

    def matrix(self, df: pd.DataFrame) -> np.ndarray:
        return self._matrix(df)[0]

    def _matrix(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The forest's feature matrix and, per row, whether a numeric input is unusable: infinite, text
        that is not a number, or missing where the reference never was (such values are filled with the
        reference median for the forest, which would otherwise score them as ordinary)."""
        missing = [c for c in self.features if c not in df.columns]
        if missing:
            raise DataError(f"Inputs lack the columns the anomaly model needs: {missing}.")
        cols = []
        unusable = np.zeros(len(df), dtype=bool)
        complete = set(self.complete)
        for c in self.numeric:
            raw = df[c]
            v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            nan = np.isnan(v)
            unusable |= np.isinf(v) | (nan & raw.notna().to_numpy())
            if c in complete:
                unusable |= nan
            cols.append(np.where(np.isfinite(v), v, self.fill[c]))
        for c, cats in self.categories.items():
            idx = {k: i for i, k in enumerate(cats)}
            # Unknown categories get their own code, far from the known ones.
            cols.append(df[c].astype(str).map(lambda x, idx=idx: idx.get(x, -len(idx) - 1)).to_numpy(dtype=np.float64))
        return (np.column_stack(cols) if cols else np.empty((len(df), 0))), unusable

    def flags(self, df: pd.DataFrame) -> np.ndarray:
        """True for each anomalous row: forest outlier, out of the reference range, unknown category, or an
        unusable numeric input (infinite, not a number, missing where the reference had no missing values)."""
        x, unusable = self._matrix(df)
        bad = (self.forest.predict(x) == -1) | unusable
        for j, c in enumerate(self.numeric):
            lo, hi = self.bounds.get(c, (-np.inf, np.inf))
            bad |= (x[:, j] < lo) | (x[:, j] > hi)
        for j in range(len(self.numeric), x.shape[1]):
            bad |= x[:, j] < 0
        return np.asarray(bad, dtype=bool)


@dataclass(frozen=True)
class AnomalyResult:
    n: int
    n_anomalous: int
    share: float
    max_share: float
    exceeded: bool
    expected_share: float

    def to_dict(self) -> dict[str, Any]:
        return _jsonable_dict(self.__dict__.copy())


def _finite_median(col: pd.Series) -> float:
    v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else 0.0


def fit_anomaly_model(reference: pd.DataFrame, *, config: AnomalyConfig | None = None, exclude: list[str] | None = None,
                      trained_on: str = "", seed: int = 0) -> AnomalyModel:
    """Fit on (a sample of) the reference features; ``exclude`` drops e.g. the target column."""
    cfg = config or AnomalyConfig()
    df = reference.drop(columns=[c for c in (exclude or []) if c in reference.columns])
    if len(df) == 0:
        raise DataError("Cannot fit the anomaly model on an empty reference dataset.")
    if len(df) > cfg.max_training_rows:
        df = df.sample(cfg.max_training_rows, random_state=seed)
    numeric = tuple(
        c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
    )
    categorical = [c for c in df.columns if c not in numeric and df[c].nunique(dropna=True) <= 200]
    fill = {c: _finite_median(df[c]) for c in numeric}
    cats = {c: sorted(df[c].dropna().astype(str).unique().tolist()) for c in categorical}
    bounds = {}
    complete = []
    for c in numeric:
        v = pd.to_numeric(df[c], errors="coerce")
        if not v.isna().any():
            complete.append(c)
        v = v[np.isfinite(v.to_numpy(dtype=np.float64, na_value=np.nan))]
        lo, hi = (float(v.min()), float(v.max())) if len(v) else (math.nan, math.nan)
        pad = 0.1 * (hi - lo) if hi > lo else max(abs(lo) * 0.1, 1.0)
        bounds[c] = (lo - pad, hi + pad) if np.isfinite(lo) else (-np.inf, np.inf)
    from sklearn.ensemble import IsolationForest

    tmp = AnomalyModel(IsolationForest(), numeric, cats, fill, trained_on)
    forest = IsolationForest(n_estimators=cfg.n_estimators, contamination=cfg.contamination, random_state=seed)
    forest.fit(tmp.matrix(df))
    return AnomalyModel(forest, numeric, cats, fill, trained_on, bounds, tuple(complete))


def score_anomalies(model: AnomalyModel, inputs: pd.DataFrame | Iterable[pd.DataFrame], *,
                    config: AnomalyConfig | None = None, chunk_rows: int = 100_000) -> AnomalyResult:
    """Share of ``inputs`` the forest calls anomalous, scored chunk by chunk.

    ``inputs`` is a DataFrame or an iterable of DataFrame chunks (a streamed window): only the
    flagged count is kept between chunks.
    """
    cfg = config or AnomalyConfig()
    chunks: Iterable[pd.DataFrame]
    if isinstance(inputs, pd.DataFrame):
        chunks = (inputs.iloc[i : i + chunk_rows] for i in range(0, len(inputs), chunk_rows))
    else:
        chunks = inputs
    n = flagged = 0
    for part in chunks:
        n += len(part)
        if len(part):
            flagged += int(np.sum(model.flags(part)))
    share = flagged / n if n else 0.0
    return AnomalyResult(n, flagged, share, cfg.max_share, n > 0 and share > cfg.max_share, float(cfg.contamination))


def save_anomaly_model(project: ProjectHandle, model_ref: str, model: AnomalyModel) -> str:
    """Store the forest (skops) in the blob store and attach its description to the model version."""
    from bastion.flavors._skops import skops_io

    sio = skops_io()

    digest = project.blobs.put_bytes(sio.dumps(model.forest))
    project.attach(
        model_ref,
        ATTACHMENT_KIND,
        {
            "schema_version": 1,
            "digest": digest,
            "numeric": list(model.numeric),
            "categories": model.categories,
            "fill": model.fill,
            "bounds": {k: list(v) for k, v in model.bounds.items()},
            "complete": list(model.complete),
            "trained_on": model.trained_on,
            "created": datetime.now(UTC).isoformat(),
        },
    )
    return str(digest)


def load_anomaly_model(project: ProjectHandle, model_ref: str) -> AnomalyModel | None:
    """The latest stored anomaly model of a version, or None. Refuses files with unexpected types."""
    docs = project.attachments(model_ref, ATTACHMENT_KIND)
    if not docs:
        return None
    from bastion.flavors._skops import skops_io

    sio = skops_io()
    from sklearn.ensemble import IsolationForest

    doc = docs[-1]
    data = project.blobs.get_bytes(doc["digest"])  # verified against its digest
    untrusted = set(sio.get_untrusted_types(data=data))
    unexpected = untrusted - _ALLOWED_TYPES
    if unexpected:
        raise UnsafeArtifactError(
            f"The stored anomaly model holds unexpected types {sorted(unexpected)}; refit it with "
            "`bastion monitor run` after deleting the attachment."
        )
    forest = sio.loads(data, trusted=sorted(untrusted))
    if not isinstance(forest, IsolationForest):
        raise UnsafeArtifactError(
            f"The stored anomaly model is a {type(forest).__name__}, not an IsolationForest; refusing to use it."
        )
    bounds = {k: (float(v[0]), float(v[1])) for k, v in (doc.get("bounds") or {}).items()}
    return AnomalyModel(forest, tuple(doc["numeric"]), dict(doc["categories"]), dict(doc["fill"]),
                        doc.get("trained_on", ""), bounds, tuple(doc.get("complete") or ()))
