"""Small real models of every flavor, trained on named features, saved the way their users save them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ["age", "income", "score", "tenure"]
TARGET = "label"


def frame(rows: int = 600, seed: int = 0, *, sex: bool = False) -> pd.DataFrame:
    """Four numeric features (plus a 0/1 ``sex`` feature when asked) and a binary ``label``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    df = pd.DataFrame(x, columns=FEATURES)
    df["age"] = (df["age"] * 12 + 45).round(1)
    df["income"] = (df["income"] * 15_000 + 60_000).round(2)
    logit = 0.08 * (df["age"] - 45) + 1.2 * df["score"] - 0.7 * df["tenure"] + (df["income"] - 60_000) / 20_000
    if sex:
        df["sex"] = rng.integers(0, 2, size=rows).astype("int64")
        logit = logit + 0.3 * df["sex"]
    df[TARGET] = (logit + rng.normal(scale=0.4, size=rows) > 0).astype("int64")
    return df


def onnx_pipeline(df: pd.DataFrame, dest: Path, features: list[str] = FEATURES) -> tuple[Path, Any]:
    """A scikit-learn pipeline converted with skl2onnx: one float tensor input of the 4 features in order."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x = df[features].to_numpy(dtype=np.float32)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))]).fit(x, df[TARGET])
    onx = to_onnx(pipe, x[:1], options={id(pipe[-1]): {"zipmap": False}}, target_opset=17)
    path = dest / "pipeline.onnx"
    path.write_bytes(onx.SerializeToString())
    return path, pipe


def onnx_zipmap(df: pd.DataFrame, dest: Path) -> Path:
    """The skl2onnx default: probabilities as a ZipMap (a sequence of {class: probability})."""
    from skl2onnx import to_onnx
    from sklearn.tree import DecisionTreeClassifier

    x = df[FEATURES].to_numpy(dtype=np.float32)
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, df[TARGET])
    path = dest / "tree-zipmap.onnx"
    path.write_bytes(to_onnx(tree, x[:1], target_opset=17).SerializeToString())
    return path


def xgboost_json(df: pd.DataFrame, dest: Path, suffix: str = ".json", features: list[str] = FEATURES
                 ) -> tuple[Path, Any]:
    import xgboost

    clf = xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, random_state=0)
    clf.fit(df[features], df[TARGET])
    path = dest / f"xgb{suffix}"
    clf.get_booster().save_model(str(path))
    return path, clf


def lightgbm_text(df: pd.DataFrame, dest: Path, features: list[str] = FEATURES) -> tuple[Path, Any]:
    import lightgbm

    clf = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, n_jobs=1, random_state=0, verbose=-1)
    clf.fit(df[features], df[TARGET])
    path = dest / "lgbm.txt"
    clf.booster_.save_model(str(path))
    return path, clf


def skops_control(df: pd.DataFrame, dest: Path, features: list[str] = FEATURES) -> tuple[Path, Any]:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=500).fit(df[features], df[TARGET])
    path = dest / "control.skops"
    sio.dump(clf, path)
    return path, clf


def framework_predictions(kind: str, model: Any, rows: pd.DataFrame) -> tuple[list[int], list[float]]:
    """Labels and positive-class probabilities as the framework itself computes them."""
    x = rows[FEATURES]
    if kind == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        label, proba = sess.run(None, {sess.get_inputs()[0].name: x.to_numpy(dtype=np.float32)})
        return [int(v) for v in label], [float(p) for p in np.asarray(proba)[:, 1]]
    if kind == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(model))
        p = booster.predict(xgboost.DMatrix(x))
        return [int(v > 0.5) for v in p], [float(v) for v in p]
    if kind == "lightgbm":
        import lightgbm

        p = lightgbm.Booster(model_file=str(model)).predict(x)
        return [int(v > 0.5) for v in p], [float(v) for v in p]
    proba = model.predict_proba(x)[:, 1]
    return [int(v) for v in model.predict(x)], [float(v) for v in proba]
