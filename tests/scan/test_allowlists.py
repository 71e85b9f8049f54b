"""Real saved models of the allowlisted libraries scan clean (nothing above INFO)."""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from bastion.scan import Severity, _policy, scan_bytes, scan_path

TORCH_DIR = Path(__file__).parent / "data" / "torch"


def _models() -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] > 0).astype(int)
    frame = pd.DataFrame(
        {"a": rng.normal(size=120), "b": rng.choice(["x", "y", "z"], 120), "c": rng.integers(0, 5, 120)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "logreg": LogisticRegression().fit(x, y),
            "forest": RandomForestClassifier(n_estimators=4, random_state=0).fit(x, y),
            "pipeline": Pipeline(
                [
                    ("prep", ColumnTransformer([("num", StandardScaler(), ["a", "c"]),
                                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["b"])])),
                    ("clf", LogisticRegression()),
                ]
            ).fit(frame, y),
            "gboost": GradientBoostingClassifier(n_estimators=4).fit(x, y),
            "histgb": HistGradientBoostingClassifier(max_iter=4).fit(x, y),
            "knn": KNeighborsClassifier().fit(x, y),
            "tfidf": make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(
                ["alpha beta", "beta gamma", "gamma delta"] * 4, [0, 1, 0] * 4
            ),
            "functransformer": FunctionTransformer(np.log1p).fit(np.abs(x)),
            "frame": frame,
            "category-frame": frame.astype({"b": "category"}),
            "times": pd.DataFrame({"t": pd.date_range("2020", periods=3, tz="UTC"),
                                   "b": pd.date_range("2020", periods=3, tz="Europe/Berlin"),
                                   "d": pd.to_timedelta([1, 2, 3], unit="s")}),
            "array": np.arange(12.0).reshape(3, 4),
            "structured": np.zeros(2, dtype=[("a", "f4"), ("b", "i8")]),
            "rng": np.random.default_rng(3),
        }


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return _models()


def _clean(data: bytes, label: str) -> None:
    report = scan_bytes(data, name=label)
    loud = [f for f in report.findings if f.severity > Severity.INFO]
    assert loud == [], (label, [(f.rule_id, f.construct) for f in loud])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickled_models_are_clean(models: dict[str, Any], protocol: int) -> None:
    for name, obj in models.items():
        _clean(pickle.dumps(obj, protocol=protocol), f"{name}.p{protocol}")


@pytest.mark.parametrize("compress", [0, 3, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)],
                         ids=str)
def test_joblib_models_are_clean(models: dict[str, Any], compress: Any) -> None:
    for name, obj in models.items():
        buf = io.BytesIO()
        joblib.dump(obj, buf, compress=compress)
        _clean(buf.getvalue(), f"{name}.joblib")


def test_numpy_files_are_clean(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(10, dtype=np.float32))
    np.savez_compressed(tmp_path / "b.npz", x=np.ones((2, 2)), y=np.array(["a", "bc"]))
    report = scan_path(tmp_path)
    assert {f.format for f in report.files} == {"numpy", "npz"}
    assert report.findings == ()


def test_torch_checkpoints_are_clean() -> None:
    # Real torch.save outputs (zip and legacy formats), made by data/make_torch_fixtures.py.
    report = scan_path(TORCH_DIR)
    loud = [f for f in report.findings if f.severity > Severity.INFO]
    assert loud == [], [(f.file, f.rule_id, f.construct) for f in loud]
    formats = {Path(f.path).name: f.format for f in report.files}
    assert formats["state.pt"] == "pytorch"
    assert formats["whole.pt"] == "pytorch"
    assert formats["legacy-state.pt"] == "pytorch-legacy"
    assert formats["legacy-whole.pt"] == "pytorch-legacy"


def test_allowlist_files_are_exact_names() -> None:
    entries = _policy.allowlist()
    assert "sklearn.linear_model._logistic.LogisticRegression" in entries
    assert "torch._utils._rebuild_tensor_v2" in entries
    assert all("." in e and " " not in e and not e.endswith("*") for e in entries)


@pytest.mark.parametrize(
    ("module", "name"),
    [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("__builtin__", "exec"), ("subprocess", "Popen"),
     ("numpy.testing._private.utils", "runstring"), ("torch.hub", "load"), ("operator", "methodcaller"),
     ("pandas", "read_pickle"), ("collections", "OrderedDict.__class__")],
)
def test_critical_names_never_allowed(module: str, name: str) -> None:
    assert _policy.critical_match(module, name) is not None


def test_no_allowlisted_name_is_critical() -> None:
    clashes = [e for e in _policy.allowlist() if _policy.critical_match(*e.rsplit(".", 1)) is not None]
    assert clashes == []


def test_xgboost_and_lightgbm_models_are_clean() -> None:
    # Real pickles/joblib files of both libraries, made by data/make_fixtures.py.
    report = scan_path(Path(__file__).parent / "data" / "boosting")
    assert len(report.files) == 8
    loud = [f for f in report.findings if f.severity > Severity.INFO]
    assert loud == [], [(f.file, f.rule_id, f.construct) for f in loud]


def test_the_reported_critical_match_does_not_depend_on_the_hash_seed() -> None:
    """`commands.check_call` hits both as written and normalized (subprocess); the report must name the same
    entry in every process, whatever PYTHONHASHSEED is (reports are compared and diffed by users)."""
    import os
    import subprocess
    import sys

    code = ("from bastion.scan import _policy; "
            "print(_policy.critical_match('commands', 'check_call'), _policy.critical_match('posix', 'system'))")
    seen = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
        for seed in range(6)
    }
    assert len(seen) == 1 and "None" not in seen.pop()
