"""Demo stage 2: train on the (protected) training data, version datasets and models, promote, roll back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bastion.demo.data import ADULT_CATEGORICAL, ADULT_NUMERIC, ADULT_TARGET, load_adult
from bastion.registry.records import ModelVersion

if TYPE_CHECKING:
    from bastion.demo.run import DemoContext


def make_pipeline(C: float = 1.0) -> Pipeline:
    """One-hot categoricals, scaled numerics, logistic regression: a standard Adult baseline."""
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ADULT_NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ADULT_CATEGORICAL),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=C, max_iter=500))])


def _evaluate(model: Any, test: pd.DataFrame) -> dict[str, float]:
    X, y = test[ADULT_NUMERIC + ADULT_CATEGORICAL], test[ADULT_TARGET]
    proba = model.predict_proba(X)[:, 1]
    return {"accuracy": float(accuracy_score(y, proba >= 0.5)), "roc_auc": float(roc_auc_score(y, proba))}


def run(ctx: DemoContext) -> None:
    p, say = ctx.project, ctx.say
    train: pd.DataFrame | None = ctx.state.get("train_df")
    if train is None:
        train = load_adult("train")
        ctx.state["train_df"] = train
        ctx.state["dataset_ref"] = p.register_dataset(
            train, name="adult-train", description="UCI Adult training split"
        ).ref
    test = load_adult("test")
    ctx.state["test_df"] = test
    test_ds = p.register_dataset(test, name="adult-holdout", description="UCI Adult test split")
    ctx.state["holdout_ref"] = test_ds.ref
    say(f"Datasets: {ctx.state['dataset_ref']} ({len(train)} rows), {test_ds.ref} ({len(test)} rows)")

    features = ADULT_NUMERIC + ADULT_CATEGORICAL
    versions: list[ModelVersion] = []
    for C in (1.0, 0.05):
        model = make_pipeline(C).fit(train[features], train[ADULT_TARGET])
        metrics = _evaluate(model, test)
        mv = p.log_model(
            model,
            name="income",
            datasets=[ctx.state["dataset_ref"]],
            metrics=metrics,
            params={"C": C, "model": "LogisticRegression"},
            description="Predicts whether income exceeds 50K (demo).",
            parent=versions[-1].ref if versions else None,
        )
        versions.append(mv)
        say(
            f"Trained and registered {mv.ref}: accuracy {metrics['accuracy']:.3f}, ROC AUC {metrics['roc_auc']:.3f}"
            f" (scan: {mv.scan_status})"
        )
    ctx.state["model_ref"] = versions[0].ref
    ctx.state["model_refs"] = [v.ref for v in versions]
    ctx.state["target"] = ADULT_TARGET
    ctx.state["features"] = features
    ctx.state["sensitive"] = ["sex", "race"]

    diff = p.diff_models(versions[0].ref, versions[1].ref)
    say(
        f"Diff {versions[0].ref} vs {versions[1].ref}: params {sorted(diff['params'])}, "
        f"same data: {diff['datasets']['same']}"
    )
    lineage = p.lineage(versions[1].ref)
    say(f"Lineage of {versions[1].ref}: " + " -> ".join(_walk(lineage)))


def _walk(node: dict[str, Any]) -> list[str]:
    out = [f"{node['kind']} {node.get('ref') or str(node.get('digest'))[:15]}"]
    for child in node.get("children", []):
        out += _walk(child)
    return out


def registry_roundtrip(ctx: DemoContext) -> None:
    """Promote both versions in turn, roll back, and load by alias: what `make demo` shows for stage 2."""
    p, say = ctx.project, ctx.say
    name = "income"
    refs = ctx.state["model_refs"]
    for ref in refs:
        p.promote(ref, alias="staging")
        say(f"Promoted {ref} to {name}@staging")
    back = p.rollback(name, alias="staging", reason="demo: roll back")
    say(f"Rolled back {name}@staging -> {back.ref}")
    model = p.load_model(f"{name}@staging")
    sample = ctx.state["test_df"].head(3)[ctx.state["features"]]
    say(f"Loaded {name}@staging safely (skops, trusted types only): predictions {model.predict(sample).tolist()}")
