"""A small servable project (dataset, skops model, signature, passed gate, alias) for tests, docs and benchmarks.

Everything it builds goes through the public registry, signing and gate functions, like a user would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SAMPLE_PASSPHRASE", "SampleProject", "build_sample_project", "sample_frame", "sample_policy"]

SAMPLE_PASSPHRASE = "sample-passphrase-not-secret"  # noqa: S105 - a throwaway test key's passphrase


@dataclass(frozen=True)
class SampleProject:
    """What :func:`build_sample_project` made."""

    root: Path
    name: str
    refs: tuple[str, ...]
    dataset_ref: str
    features: tuple[str, ...]
    target: str
    frame: pd.DataFrame


def sample_frame(rows: int = 2000, n_features: int = 30, *, seed: int = 0, categorical: bool = True) -> pd.DataFrame:
    """``n_features`` numeric columns ``f0…``, optionally a category ``segment`` and an ``email`` (sensitive),
    and a binary target ``label``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n_features))
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(n_features)])
    w = np.linspace(-1.0, 1.0, n_features)
    logit = x @ w
    if categorical:
        seg = rng.choice(["a", "b", "c"], size=rows)
        df["segment"] = seg
        logit = logit + np.where(seg == "a", 0.5, -0.25)
    df["label"] = (logit + rng.normal(scale=0.5, size=rows) > 0).astype("int64")
    return df


def sample_policy(target: str = "label") -> str:
    """A gate policy with one fast check and an alias rule that requires gate, scan and signature."""
    return (
        "version: 1\nname: sample\n"
        f"target: {target}\npositive_label: 1\n"
        "checks:\n  performance:\n    thresholds: {accuracy: 0.6}\n"
        "aliases:\n  production:\n    requires: [gate, scan, signature]\n"
        "  staging:\n    requires: [gate, scan, signature]\n"
    )


def _fit(df: pd.DataFrame, features: list[str], target: str, c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f for f in features if f != "segment"]
    if "segment" in features:
        pre = ColumnTransformer([("num", StandardScaler(), numeric),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["segment"])])
        from sklearn.pipeline import Pipeline as _P

        return _P([("pre", pre), ("clf", LogisticRegression(C=c, max_iter=300))]).fit(df[features], df[target])
    # all-numeric: fit on a plain array, the fastest predict path (the serving benchmark's model)
    return Pipeline([("clf", LogisticRegression(C=c, max_iter=300))]).fit(df[features].to_numpy(), df[target])


def build_sample_project(
    root: str | Path,
    *,
    name: str = "sample",
    versions: int = 2,
    n_features: int = 30,
    rows: int = 2000,
    categorical: bool = True,
    alias: str = "production",
    protect_email: bool = True,
) -> SampleProject:
    """Create a project at ``root`` with ``versions`` signed, scanned, gated versions of model ``name``;
    the first version takes ``alias``.

    The training dataset records ``email`` as sensitive in its protection report (when ``protect_email``).
    """
    import os
    import warnings

    from bastion.crypto.signing.keys import PASSPHRASE_ENV, init_signing_key, load_signing_key
    from bastion.gates.policy import POLICY_FILE
    from bastion.gates.run import run_gate
    from bastion.gates.signatures import sign_version
    from bastion.project import init_project

    root = Path(root)
    p = init_project(root)
    try:
        df = sample_frame(rows, n_features, categorical=categorical)
        target = "label"
        features = [c for c in df.columns if c != target]
        train = df.iloc[: rows * 3 // 4].reset_index(drop=True)
        hold = df.iloc[rows * 3 // 4 :].reset_index(drop=True)
        extra: dict[str, Any] = {}
        train_reg = train
        if protect_email:
            train_reg = train.assign(email=[f"tok_{i:06d}" for i in range(len(train))])
            doc = {"schema_version": 1, "columns": [{"column": "email", "operator": "tokenize", "scope": "column"}],
                   "operators": {"email": "tokenize"}}
            extra = {"protection": doc}
        dv = p.register_dataset(train_reg, name=f"{name}-train", extra=extra)
        if protect_email:
            p.attach(dv.ref, "protection", extra["protection"], subject_kind="dataset")
        (root / POLICY_FILE).write_text(sample_policy(target), encoding="utf-8")
        old = os.environ.get(PASSPHRASE_ENV)
        os.environ[PASSPHRASE_ENV] = SAMPLE_PASSPHRASE
        try:
            init_signing_key(p, "release", passphrase=SAMPLE_PASSPHRASE)
            key = load_signing_key(p, "release", passphrase=SAMPLE_PASSPHRASE)
            refs = []
            for i in range(versions):
                model = _fit(train, features, target, c=1.0 / (1 + i))
                mv = p.log_model(model, name=name, datasets=[dv.ref], metrics={}, params={"C": 1.0 / (1 + i)})
                sign_version(p, mv.ref, key=key)
                with warnings.catch_warnings():
                    # the gate hands a DataFrame to the array-fitted benchmark model; harmless here
                    warnings.filterwarnings("ignore", message="X has feature names", category=UserWarning)
                    result = run_gate(p, mv.ref, root / POLICY_FILE, hold, target)
                if not result.passed:
                    raise RuntimeError(f"sample gate failed for {mv.ref}: {result.failed_required}")
                refs.append(mv.ref)
        finally:
            if old is None:
                os.environ.pop(PASSPHRASE_ENV, None)
            else:
                os.environ[PASSPHRASE_ENV] = old
        p.promote(refs[0], alias=alias)
    finally:
        p.close()
    return SampleProject(root, name, tuple(refs), dv.ref, tuple(features), target, df)
