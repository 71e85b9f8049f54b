"""Real benign models: 26 scikit-learn estimator types as pickle and joblib (every compressor), plus
XGBoost and LightGBM. The scanner passes every one at the default threshold, and the restricted
unpickler loads every one to the same predictions."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from bastion.scan import scan_bytes, scan_path
from bastion.scan.restricted import restricted_load, restricted_loads

COMPRESSORS = [0, "zlib", "gzip", "bz2", "lzma", "xz", "lz4"]


def _models() -> list[tuple[Any, Any]]:
    from sklearn import (
        calibration,
        cluster,
        compose,
        decomposition,
        discriminant_analysis,
        ensemble,
        feature_extraction,
        feature_selection,
        impute,
        isotonic,
        kernel_ridge,
        linear_model,
        model_selection,
        multiclass,
        naive_bayes,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,
        svm,
        tree,
    )
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=80, n_features=5, random_state=0)
    df = pd.DataFrame(x, columns=list("abcde"))
    df["cat"] = np.where(y, "u", "v")
    text = ["good model", "bad model", "fine data", "poor data"] * 20
    out: list[tuple[Any, Any]] = []
    for est in [
        ensemble.RandomForestClassifier(n_estimators=3, random_state=0),
        ensemble.ExtraTreesClassifier(n_estimators=3, random_state=0),
        ensemble.GradientBoostingClassifier(n_estimators=3, random_state=0),
        ensemble.HistGradientBoostingClassifier(max_iter=3),
        ensemble.AdaBoostClassifier(n_estimators=3),
        ensemble.BaggingClassifier(n_estimators=3, random_state=np.random.RandomState(0)),
        ensemble.StackingClassifier([("lr", linear_model.LogisticRegression()), ("t", tree.DecisionTreeClassifier())]),
        ensemble.VotingClassifier([("lr", linear_model.LogisticRegression()), ("nb", naive_bayes.GaussianNB())]),
        linear_model.LogisticRegression(),
        linear_model.SGDClassifier(random_state=0),
        tree.DecisionTreeClassifier(),
        svm.SVC(),
        svm.LinearSVC(),
        neighbors.KNeighborsClassifier(),
        naive_bayes.GaussianNB(),
        neural_network.MLPClassifier(max_iter=30, random_state=0),
        discriminant_analysis.LinearDiscriminantAnalysis(),
        calibration.CalibratedClassifierCV(cv=2),
        multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
        pipeline.make_pipeline(preprocessing.StandardScaler(), decomposition.PCA(3), linear_model.LogisticRegression()),
        model_selection.GridSearchCV(tree.DecisionTreeClassifier(), {"max_depth": [1, 2]}, cv=2),
        # score functions and scorers are stored by reference (allowlists/sklearn-functions.txt)
        model_selection.RandomizedSearchCV(tree.DecisionTreeClassifier(), {"max_depth": [1, 2, 3]}, n_iter=2, cv=2,
                                           scoring=["roc_auc", "f1", "neg_log_loss"], refit="roc_auc", random_state=0),
        pipeline.make_pipeline(feature_selection.SelectKBest(k=3), linear_model.LogisticRegression()),
        pipeline.make_pipeline(feature_selection.SelectKBest(feature_selection.mutual_info_classif, k=3),
                               naive_bayes.GaussianNB()),
    ]:
        out.append((est.fit(x, y), x))
    out.append((kernel_ridge.KernelRidge().fit(x, x[:, 0]), x))
    out.append((isotonic.IsotonicRegression().fit(x[:, 0], x[:, 1]), x[:, 0]))
    out.append((cluster.KMeans(3, n_init=2, random_state=0).fit(x), x))
    out.append((impute.SimpleImputer().fit(x), x))
    ct = compose.ColumnTransformer([("n", preprocessing.StandardScaler(), list("abcde")),
                                    ("c", preprocessing.OneHotEncoder(), ["cat"])])
    out.append((pipeline.Pipeline([("ct", ct), ("lr", linear_model.LogisticRegression())]).fit(df, y), df))
    out.append((pipeline.make_pipeline(feature_extraction.text.TfidfVectorizer(), linear_model.LogisticRegression())
                .fit(text, [0, 1, 1, 0] * 20), text))
    out.append((preprocessing.FunctionTransformer(np.log1p).fit(np.abs(x)), np.abs(x)))
    import lightgbm
    import xgboost

    out.append((xgboost.XGBClassifier(n_estimators=3).fit(x, y), x))
    out.append((lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y), x))
    return out


@pytest.fixture(scope="module")
def models() -> list[tuple[Any, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _models()


def _predict(model: Any, x: Any) -> Any:
    for method in ("predict", "transform"):
        if hasattr(model, method):
            return np.asarray(getattr(model, method)(x))
    raise AssertionError(type(model))


def test_there_are_enough_estimator_types(models: list[tuple[Any, Any]]) -> None:
    assert len({type(m).__name__ for m, _ in models}) >= 28


def test_pickles_scan_clean_and_load_restricted(models: list[tuple[Any, Any]]) -> None:
    for model, x in models:
        data = pickle.dumps(model, protocol=5)
        report = scan_bytes(data)
        assert report.is_clean(), (type(model).__name__, report.to_text())
        assert (_predict(restricted_loads(data), x) == _predict(model, x)).all(), type(model).__name__


@pytest.mark.parametrize("compress", COMPRESSORS)
def test_joblib_files_scan_clean_and_load_restricted(models: list[tuple[Any, Any]], compress: Any,
                                                     tmp_path: Path) -> None:
    for i, (model, x) in enumerate(models):
        path = tmp_path / f"m{i}.joblib"
        joblib.dump(model, path, compress=0 if compress == 0 else (compress, 1))
        report = scan_path(path)
        assert report.is_clean(), (type(model).__name__, report.to_text())
        if compress in (0, "gzip", "lz4") or i % 4 == 0:  # every compressor loads; the full grid would be slow
            assert (_predict(restricted_load(path), x) == _predict(model, x)).all(), type(model).__name__
