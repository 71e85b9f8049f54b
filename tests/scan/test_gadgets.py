"""Gadgets through allowlisted globals: what an allowlisted callable does with arguments the attacker chose.

Each payload is first shown to act under plain ``pickle.loads`` (it reads a file of our choosing, or runs the
constructor we name), then Bastion's scan must flag it (HIGH or above) and the restricted loader refuse it.
Benign objects of the same libraries (the shapes the libraries' own pickles use) stay clean and load.
"""

from __future__ import annotations

import enum
import importlib
import io
import pickle
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from bastion.errors import UnsafeArtifactError
from bastion.scan import Severity, _policy, _signatures, scan_bytes
from bastion.scan.restricted import restricted_loads


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _s(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _rules(data: bytes) -> set[str]:
    report = scan_bytes(data, name="model.pkl")
    return {f.rule_id for f in report.findings if f.severity >= Severity.HIGH}


@pytest.fixture(scope="module")
def xgb_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real XGBoost model on "the host": what a Booster(model_file=...) gadget reads."""
    import xgboost

    path = tmp_path_factory.mktemp("host") / "other-team-model.json"
    x = np.arange(40.0).reshape(20, 2)
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(x, label=x[:, 0] > 20), num_boost_round=3)
    booster.save_model(str(path))
    return path


def _booster_payloads(path: str) -> dict[str, bytes]:
    xgb = _g("xgboost.core", "Booster")
    return {
        "REDUCE": b"\x80\x02" + xgb + b"NN" + _s(path) + b"\x87R.",
        "OBJ": b"\x80\x02(" + xgb + b"NN" + _s(path) + b"o.",
        "INST (protocol 0)": b"(NNV" + path.encode() + b"\nixgboost.core\nBooster\n.",
        "INST memo name": b"\x80\x02(NN" + _s(path) + b"ixgboost.core\nBooster\n.",
    }


@pytest.mark.parametrize("how", list(_booster_payloads("x")))
def test_constructor_reading_a_host_file_is_flagged_and_refused(xgb_model_file: Path, how: str) -> None:
    data = _booster_payloads(str(xgb_model_file))[how]
    # the gadget is real: plain pickle reads the host's model file through the constructor
    loaded = pickle.loads(data)
    assert loaded.num_boosted_rounds() == 3
    assert "pickle.constructor-call" in _rules(data)
    with pytest.raises(UnsafeArtifactError, match="runs its constructor"):
        restricted_loads(data)


def test_lightgbm_booster_constructor_is_refused(tmp_path: Path) -> None:
    data = b"\x80\x02" + _g("lightgbm.basic", "Booster") + b"NN" + _s(str(tmp_path / "host-model.txt")) + b"\x87R."
    assert "pickle.constructor-call" in _rules(data)
    with pytest.raises(UnsafeArtifactError, match="runs its constructor"):
        restricted_loads(data)


def test_partial_of_a_constructor_is_refused(xgb_model_file: Path) -> None:
    # functools.partial defers the call to predict time (FunctionTransformer.func, a scorer, a kernel)
    data = b"\x80\x02" + _g("functools", "partial") + _g("xgboost.core", "Booster") + b"\x85R."
    called = pickle.loads(data)(model_file=str(xgb_model_file))  # what the model's own code would do later
    assert called.num_boosted_rounds() == 3
    assert "pickle.constructor-call" in _rules(data)
    with pytest.raises(UnsafeArtifactError, match="runs its constructor"):
        restricted_loads(data)
    # a partial of an allowlisted function (how sklearn stores scorers) stays allowed
    ok = pickle.dumps(__import__("functools").partial(
        importlib.import_module("sklearn.metrics").f1_score, average="macro"), protocol=4)
    assert _rules(ok) == set()
    assert restricted_loads(ok).keywords == {"average": "macro"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["ExcelWriter", "ExcelFile", "HDFStore"])
def test_pandas_file_classes_are_off_the_allowlist(name: str, tmp_path: Path) -> None:
    # ExcelWriter(path) truncates the file (with openpyxl installed), ExcelFile/HDFStore open it
    data = b"\x80\x02" + _g("pandas", name) + _s(str(tmp_path / "victim.xlsx")) + b"\x85R."
    assert f"pandas.{name}" not in _policy.allowlist()
    assert _rules(data) & {"pickle.unknown-callable", "pickle.constructor-call"}
    with pytest.raises(UnsafeArtifactError):
        restricted_loads(data)
    assert not (tmp_path / "victim.xlsx").exists()


# -- benign: what the libraries' own pickles do ---------------------------------------------------------------

def _benign() -> dict[str, Any]:
    import pyarrow as pa

    frame = pd.DataFrame({
        "s": pd.array(["a", None], dtype="string"), "n": [pd.NaT, pd.Timestamp("2020-01-01")],
        "i": pd.array([1, None], dtype="Int64"), "iv": pd.IntervalIndex.from_breaks([0, 1, 2]),
        "p": pd.period_range("2020", periods=2, freq="M"), "a": pd.array([1, 2], dtype=pd.ArrowDtype(pa.int64())),
    })
    return {"frame": frame, "nat": pd.NaT, "interval-index": pd.IntervalIndex.from_breaks([0, 1, 2]),
            "offsets": [pd.offsets.BusinessHour(), pd.offsets.CustomBusinessDay(holidays=["2020-01-01"])],
            "values": [pd.Interval(0, 1), pd.Period("2020-01"), np.dtype("datetime64[ns]"), slice(1, 2), range(3)]}


@pytest.mark.parametrize("protocol", [2, 5])
def test_library_objects_that_call_their_constructors_stay_clean(protocol: int) -> None:
    for label, obj in _benign().items():
        for data in (pickle.dumps(obj, protocol=protocol), _joblib_bytes(obj)):
            report = scan_bytes(data, name=f"{label}.pkl")
            loud = [(f.rule_id, f.construct) for f in report.findings if f.severity > Severity.INFO]
            assert loud == [], (label, loud)
            loaded = restricted_loads(data)
            if isinstance(obj, pd.DataFrame):
                pd.testing.assert_frame_equal(loaded, obj)  # type: ignore[arg-type]
            else:
                assert repr(loaded) == repr(obj), label


def _joblib_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


# -- the allowlist itself ---------------------------------------------------------------------------------------

_IO_MODULES = re.compile(
    r"(^|\.)(io|_io|testing|tests?|_testutils|_mptestutils|datasets|parsers|pickle_compat|executors|hub)(\.|$)")


def _resolve(full: str) -> Any:
    parts = full.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except Exception:  # another version's name, or a library not installed here
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except AttributeError:
            return None
        return obj
    return None


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = {full: _resolve(full) for full in sorted(_policy.allowlist()) if not full.startswith("torch.")}
    return {k: v for k, v in found.items() if v is not None}


def test_no_allowlisted_name_is_defined_in_io_or_test_code(resolved: dict[str, Any]) -> None:
    # the lists exclude I/O and test modules by name; a re-export (pandas.ExcelWriter) must not slip through
    bad = {full: getattr(obj, "__module__", "") for full, obj in resolved.items()
           if _IO_MODULES.search(getattr(obj, "__module__", None) or "")}
    assert bad == {}


def test_functions_file_names_exactly_the_allowlisted_functions(resolved: dict[str, Any]) -> None:
    listed = _signatures.functions()
    funcs = {full for full, obj in resolved.items() if callable(obj) and not isinstance(obj, type)}
    assert funcs - listed == set(), "allowlisted functions missing from scan/functions.txt"
    classes = {full for full, obj in resolved.items() if isinstance(obj, type)}
    assert classes & listed == set(), "classes listed as functions would be callable with any arguments"


def test_constructible_classes_are_allowlisted_classes(resolved: dict[str, Any]) -> None:
    assert _signatures.CONSTRUCTIBLE - _policy.allowlist() == set()
    assert {full for full in _signatures.CONSTRUCTIBLE if not isinstance(resolved.get(full, type), type)} == set()
    # enumerations on the allowlist are called with their value by their own pickles
    enums = {full for full, obj in resolved.items() if isinstance(obj, type) and issubclass(obj, enum.Enum)}
    assert enums - _signatures.CONSTRUCTIBLE == {"enum.Enum"}  # the functional API builds a new class


def test_booster_classes_stay_loadable_through_their_state() -> None:
    # Booster itself is allowlisted (its pickles are __new__ + __setstate__), only its constructor is refused
    import xgboost

    x = np.arange(40.0).reshape(20, 2)
    model = xgboost.XGBRegressor(n_estimators=2, max_depth=2).fit(x, x[:, 0])
    data = pickle.dumps(model, protocol=4)
    assert _rules(data) == set()
    assert np.allclose(restricted_loads(data).predict(x), model.predict(x))  # type: ignore[attr-defined]


# -- state that the model acts on at predict time ------------------------------------------------------------

@pytest.fixture(scope="module")
def filename_vectorizer() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(
        ["alpha beta", "secret gamma", "token x", "beta y"], [0, 1, 1, 0])
    model.steps[0][1].input = "filename"  # what an attacker writes into the pickled state
    return model


def test_vectorizer_reading_request_paths_is_flagged_and_refused(filename_vectorizer: Any, tmp_path: Path) -> None:
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text("secret secret token")
    data = pickle.dumps(filename_vectorizer, protocol=4)
    # the gadget is real: the plainly unpickled model reads the file a request names, at predict time
    counts = pickle.loads(data).steps[0][1].transform([str(host_file)])
    assert counts.nnz == 2
    assert "pickle.unsafe-parameter" in _rules(data)
    assert "pickle.unsafe-parameter" in _rules(_joblib_bytes(filename_vectorizer))
    with pytest.raises(UnsafeArtifactError, match="input = 'filename'"):
        restricted_loads(data)


def test_skops_vectorizer_reading_request_paths_is_refused(filename_vectorizer: Any) -> None:
    from bastion.flavors._skops import skops_io
    from bastion.flavors.sklearn import load_skops_bytes

    data = skops_io().dumps(filename_vectorizer)
    assert skops_io().get_untrusted_types(data=data) == []  # skops trusts every type in it
    with pytest.raises(UnsafeArtifactError, match="input = 'filename'"):
        load_skops_bytes(data, what="model")
    filename_vectorizer.steps[0][1].input = "content"
    try:
        assert load_skops_bytes(skops_io().dumps(filename_vectorizer)).predict(["secret gamma"]).tolist() == [1]
    finally:
        filename_vectorizer.steps[0][1].input = "filename"


# -- native model state: bytes a C++ parser trusts ------------------------------------------------------------

class _Rebuild:
    """Pickles as ``copyreg._reconstructor(cls, object, None)`` + BUILD(state), as protocol 0-1 pickles do."""

    def __init__(self, cls: type, state: dict[str, Any]) -> None:
        self.cls, self.state = cls, state

    def __reduce_ex__(self, protocol: Any) -> Any:
        import copyreg

        return copyreg._reconstructor, (self.cls, object, None), self.state


def test_pickled_lightgbm_booster_with_crashing_text_is_refused_before_lightgbm_parses_it() -> None:
    import lightgbm

    x = np.arange(60.0).reshape(20, 3)
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 2},
                             lightgbm.Dataset(x, (x[:, 0] > 25).astype(int)), 2)
    state = booster.__getstate__()
    good = pickle.dumps(_Rebuild(lightgbm.basic.Booster, dict(state)), protocol=4)
    assert restricted_loads(good).num_trees() == 2  # type: ignore[attr-defined]
    # num_tree_per_iteration=1.5e9: LightGBM segfaults (tests/flavors/test_lightgbm.py proves it in a subprocess)
    state["_handle"] = str(state["_handle"]).replace("num_tree_per_iteration=1\n",
                                                     "num_tree_per_iteration=1500000000\n")
    bad = pickle.dumps(_Rebuild(lightgbm.basic.Booster, state), protocol=4)
    with pytest.raises(UnsafeArtifactError, match="num_tree_per_iteration"):
        restricted_loads(bad)


def test_pickled_xgboost_booster_with_out_of_range_nodes_is_refused() -> None:
    import json

    import xgboost

    x = np.arange(60.0).reshape(20, 3)
    model = xgboost.train({"max_depth": 2}, xgboost.DMatrix(x, label=x[:, 0] > 25), num_boost_round=2)
    doc = json.loads(bytes(model.save_raw("json")))
    doc["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"][0] = 100_000_000  # SIGSEGV on predict
    hostile = xgboost.Booster()
    hostile.load_model(bytearray(json.dumps(doc).encode()))  # XGBoost itself accepts it
    data = pickle.dumps(hostile, protocol=4)
    with pytest.raises(UnsafeArtifactError, match="splits on feature 100000000"):
        restricted_loads(data)
    assert restricted_loads(pickle.dumps(model, protocol=4)).num_boosted_rounds() == 2  # type: ignore[attr-defined]


# -- state a class exec()s: scipy.stats distributions --------------------------------------------------------

def _hostile_distribution(canary: Path) -> Any:
    import copy

    import scipy.stats as st

    dist = copy.deepcopy(st.gamma)
    dist._parse_arg_template = f"open({str(canary)!r}, 'w').close()\n" + dist._parse_arg_template
    return dist


def test_scipy_argparser_template_copy_matches_scipy() -> None:
    from scipy.stats import _distn_infrastructure

    assert _signatures.SCIPY_ARGPARSER_TEMPLATE == _distn_infrastructure.parse_arg_template


def test_distribution_state_that_scipy_execs_is_flagged_and_refused(tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    data = pickle.dumps({"C": _hostile_distribution(canary)}, protocol=4)  # a search space holding a distribution
    pickle.loads(data)  # the gadget is real: rv_generic.__setstate__ exec()s the template
    assert canary.exists()
    canary.unlink()
    assert "pickle.unsafe-parameter" in _rules(data)
    with pytest.raises(UnsafeArtifactError, match="_parse_arg_template"):
        restricted_loads(data)
    assert not canary.exists()


def test_skops_distribution_state_that_scipy_execs_is_refused(tmp_path: Path) -> None:
    from bastion.flavors._skops import skops_io
    from bastion.flavors.sklearn import load_skops_bytes

    canary = tmp_path / "PWNED"
    data = skops_io().dumps(_hostile_distribution(canary))
    with pytest.raises(UnsafeArtifactError, match="_parse_arg_template"):
        load_skops_bytes(data, trusted=["scipy.stats._continuous_distns.gamma_gen"], what="model")
    assert not canary.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_continuous_distributions_stay_clean(protocol: int) -> None:
    import scipy.stats as st

    for dist in (st.gamma, st.norm, st.uniform(0, 2), st.rv_histogram(([1, 2], [0.0, 1.0, 2.0]))):
        data = pickle.dumps(dist, protocol=protocol)
        assert _rules(data) == set(), dist
        loaded = restricted_loads(data)
        shapes = [1.5] * getattr(dist, "numargs", 0)
        assert loaded.cdf(0.5, *shapes) == dist.cdf(0.5, *shapes)  # type: ignore[attr-defined]


def test_class_stored_in_state_is_a_constructor_call(xgb_model_file: Path) -> None:
    # FunctionTransformer calls func(X, **kw_args) at predict time: a stored class is a deferred constructor call
    import xgboost
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(func=xgboost.core.Booster, kw_args={"model_file": str(xgb_model_file)},
                                validate=False).fit(None)
    data = pickle.dumps(model, protocol=4)
    assert pickle.loads(data).transform(None).num_boosted_rounds() == 3  # the plain model reads the host file
    assert "pickle.constructor-call" in _rules(data)
    with pytest.raises(UnsafeArtifactError, match="runs its constructor"):
        restricted_loads(data)
    # a partial's func replaced through BUILD (its own state) is the same deferred call
    partial = b"\x80\x02" + _g("functools", "partial") + _g("numpy", "add") + b"\x85R" + _g("xgboost.core", "Booster") \
        + b")}" + _s("model_file") + _s(str(xgb_model_file)) + b"sN\x94b."
    partial = partial.replace(b"\x94", b"t")  # (func, args, kwargs, dict) as a 4-tuple: MARK ... TUPLE
    partial = partial.replace(b"\x85R" + _g("xgboost.core", "Booster"), b"\x85R(" + _g("xgboost.core", "Booster"))
    assert "pickle.constructor-call" in _rules(partial)
    with pytest.raises(UnsafeArtifactError, match="runs its constructor"):
        restricted_loads(partial)
    # numpy scalar types as an estimator's dtype stay clean
    from sklearn.preprocessing import OneHotEncoder

    enc = OneHotEncoder(dtype=np.float32).fit([["a"], ["b"]])
    assert _rules(pickle.dumps(enc, protocol=4)) == set()
    assert restricted_loads(pickle.dumps(enc, protocol=4)).dtype is np.float32  # type: ignore[attr-defined]


def test_class_put_into_a_container_after_its_owner_was_built_is_refused() -> None:
    # a list created, memoized, and only later given a class (APPEND after the BUILD that shared it)
    data = (b"\x80\x02]q\x00(" + _g("sklearn.metrics._classification", "f1_score") + b"eh\x00"
            + _g("xgboost.core", "Booster") + b"a0.")
    assert "pickle.constructor-call" in _rules(data)
    with pytest.raises(UnsafeArtifactError, match="runs its constructor"):
        restricted_loads(data)
