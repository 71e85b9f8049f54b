"""The restricted unpickler: real models load, every call gadget and implicit call is refused.

Each adversarial pickle below is first shown to run its payload under plain ``pickle.loads`` (in a
throwaway subprocess, watching a canary file), so a refusal here is a refused attack, not a refused
accident.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import io
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from bastion.errors import UnsafeArtifactError
from bastion.scan.restricted import restricted_load, restricted_loads

from .conftest import load_corpus_module

A = load_corpus_module("_pickleasm")
G = A.glob


def _p(*ops: bytes) -> bytes:
    return b"\x80\x02" + b"".join(bytes(o) for o in ops) + b"."


def _tup(*items: bytes) -> bytes:
    return A.MARK + b"".join(bytes(i) for i in items) + A.TUPLE


def _call(func: bytes, *args: bytes) -> bytes:
    return bytes(func) + _tup(*args) + A.REDUCE


def _s(text: str) -> bytes:
    return bytes(A.ustr(text))


def _i(n: int) -> bytes:
    return A.value(n)


# -- real objects load exactly --------------------------------------------------------------------


def _fitted() -> list[Any]:
    from sklearn import compose, ensemble, linear_model, pipeline, preprocessing, tree
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=60, n_features=4, random_state=0)
    df = pd.DataFrame(x, columns=list("abcd"))
    df["cat"] = np.where(y, "u", "v")
    ct = compose.ColumnTransformer([("n", preprocessing.StandardScaler(), list("abcd")),
                                    ("c", preprocessing.OneHotEncoder(), ["cat"])])
    return [
        ensemble.RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(0)).fit(x, y),
        ensemble.HistGradientBoostingClassifier(max_iter=3).fit(x, y),
        pipeline.Pipeline([("ct", ct), ("lr", linear_model.LogisticRegression())]).fit(df, y),
        preprocessing.FunctionTransformer(np.log1p).fit(np.abs(x)),
        tree.DecisionTreeRegressor().fit(x, x[:, 0]),
        df,
        np.random.default_rng(1),
        np.array(["a", 1, None], dtype=object),
        np.ma.masked_array([1, 2], mask=[0, 1]),
        collections.defaultdict(list, a=[1]),
        collections.OrderedDict(a=1),
        datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
        argparse.Namespace(lr=0.1, arch="transformer"),
        functools.partial(np.add, 1),
        {1, 2},
        bytearray(b"ab"),
    ]


@pytest.fixture(scope="module")
def fitted() -> list[Any]:
    return _fitted()


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, pd.DataFrame):
        assert a.equals(b)
    elif isinstance(a, np.ndarray):
        assert a.tolist() == b.tolist()
    elif hasattr(a, "get_params"):
        assert sorted(a.get_params()) == sorted(b.get_params())


@pytest.mark.parametrize("protocol", [2, 5])
def test_real_objects_load_from_plain_pickles(fitted: list[Any], protocol: int) -> None:
    for obj in fitted:
        _same(obj, restricted_loads(pickle.dumps(obj, protocol=protocol)))


@pytest.mark.parametrize("compress", [0, "zlib", "gzip", "bz2", "lzma", "xz", "lz4"])
def test_real_objects_load_from_joblib_files(fitted: list[Any], compress: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    model = fitted[0]
    joblib.dump(model, path, compress=0 if compress == 0 else (compress, 3))
    loaded = restricted_load(path)
    assert isinstance(loaded, type(model))
    x = np.random.default_rng(0).normal(size=(5, 4))
    assert (loaded.predict_proba(x) == model.predict_proba(x)).all()  # type: ignore[attr-defined]
    # the inline array bytes really were read as arrays (same as joblib.load)
    reference = joblib.load(path)
    for mine, theirs in zip(loaded.estimators_, reference.estimators_, strict=True):  # type: ignore[attr-defined]
        assert (mine.tree_.value == theirs.tree_.value).all()


def test_joblib_object_arrays_and_alignment(tmp_path: Path) -> None:
    obj = {"o": np.array(["x", 2], dtype=object), "f": np.arange(7.0).reshape(7, 1), "F": np.asfortranarray(
        np.arange(6).reshape(2, 3)), "be": np.arange(3, dtype=">i4")}
    path = tmp_path / "a.joblib"
    joblib.dump(obj, path)
    loaded = restricted_load(path)
    assert isinstance(loaded, dict)
    for k, v in obj.items():
        assert (loaded[k] == v).all()
    assert loaded["F"].flags.f_contiguous


# -- adversarial samples: each runs under plain pickle, each is refused here ------------------------

_RUN = textwrap.dedent("""
    import pickle, sys
    data = open(sys.argv[1], 'rb').read()
    try:
        pickle.loads(data)
    except Exception:
        pass
""")


def _adversarial(canary: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (pickle, a word the refusal must contain)."""
    cmd = f"touch {canary}"
    system = _call(G("os", "system"), _s(cmd))
    exec_py = f"open({str(canary)!r}, 'w').close()"
    return {
        # plain critical global
        "os-system": (_p(system), "os.system"),
        # numpy RandomState constructor calls its second argument with the first
        "randomstate-ctor-gadget": (_p(_call(G("numpy.random._pickle", "__randomstate_ctor"), _s(cmd),
                                             G("os", "system"))), "os.system"),
        "generator-ctor-allowed-callable": (_p(_call(G("numpy.random._pickle", "__generator_ctor"), _s("MT19937"),
                                                     G("builtins", "len"))), "second argument"),
        # functools.partial builds a callable; calling its result is a computed call
        "partial-then-call": (_p(_call(G("functools", "partial"), G("builtins", "len")), _tup(_s("a")),
                                 A.REDUCE), "not a global the pickle named"),
        # getattr gadget: per use, only <allowlisted class>.<allowlisted method>
        "getattr-builtins-eval": (_p(_call(G("builtins", "getattr"), G("builtins", "dict"), _s("fromkeys"))),
                                  "getattr"),
        # BUILD on an imported class monkey-patches it
        "build-on-global": (_p(bytes(G("collections", "OrderedDict")), A.EMPTY_DICT, _s("x"), _i(1), A.SETITEMS[:0],
                               b"s", A.BUILD), "modify the imported"),
        # BUILD plants __setstate__ in an instance dict, the next BUILD would call it
        "planted-setstate": (_p(_call(G("argparse", "Namespace")), A.MARK, _s("__setstate__"),
                                G("builtins", "len"), b"d", A.BUILD, _i(1), A.BUILD), "__setstate__"),
        # APPENDS on an object whose instance dict holds 'extend'
        "planted-extend": (_p(_call(G("argparse", "Namespace")), A.MARK, _s("extend"), G("builtins", "len"),
                              b"d", A.BUILD, A.MARK, _s(cmd), A.APPENDS), "extend"),
        # resource exhaustion through allowlisted arithmetic and constructors
        "pow-huge": (_p(_call(G("builtins", "pow"), _i(10), _i(10**9))), "exponent"),
        "bytes-huge": (_p(_call(G("builtins", "bytes"), _i(1 << 40))), "allocate"),
        "ndarray-reconstruct-huge": (_p(_call(G("numpy._core.multiarray", "_reconstruct"), G("numpy", "ndarray"),
                                              _tup(_i(1 << 40)), b"C\x01b")), "allocate"),
        # torch's rebuild-from-type calls its first argument with the third
        "torch-rebuild-from-type": (_p(_call(G("torch._tensor", "_rebuild_from_type_v2"), G("builtins", "pow"),
                                             G("torch", "Tensor"), _tup(_i(2), _i(3)), A.EMPTY_DICT)),
                                    "rebuild helpers"),
        "defaultdict-factory-function": (_p(_call(G("collections", "defaultdict"), G("builtins", "len"))),
                                         "default factory"),
        "persistent-id": (_p(_s("x"), b"Q"), "persistent id"),
        "extension-code": (_p(bytes(A.ext1(1))), "extension registry"),
        "newobj-ex-kwargs-class": (_p(bytes(G("argparse", "Namespace")), A.EMPTY_TUPLE, A.MARK, _s("a"),
                                      G("builtins", "len"), b"d", A.NEWOBJ_EX), "callable builtins.len"),
        "inst-critical": (b"(" + A.value(cmd, text=True) + A.inst("os", "system") + b".", "os.system"),
        "exec-through-reduce": (_p(_call(G("builtins", "exec"), _s(exec_py))), "builtins.exec"),
    }


# The samples whose payload is meant to run under plain pickle (the others are exhaustion or
# structure attacks that a real load refuses or survives without a canary).
_PAYLOADS = {"os-system", "randomstate-ctor-gadget", "inst-critical", "exec-through-reduce"}


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[bytes, str]]]:
    base = tmp_path_factory.mktemp("restricted")
    return base, _adversarial(base / "PWNED")


def test_adversarial_payloads_are_real(adversarial: tuple[Path, dict[str, tuple[bytes, str]]]) -> None:
    base, samples = adversarial
    canary = base / "PWNED"
    for name in sorted(_PAYLOADS):
        path = base / f"{name}.pkl"
        path.write_bytes(samples[name][0])
        subprocess.run([sys.executable, "-c", _RUN, str(path)], check=True, timeout=60, cwd=base)
        assert canary.exists(), f"{name}: plain pickle.loads did not run the payload"
        canary.unlink()


@pytest.mark.parametrize("name", sorted(_adversarial(Path("/nonexistent/PWNED"))))
def test_adversarial_pickles_are_refused(adversarial: tuple[Path, dict[str, tuple[bytes, str]]], name: str) -> None:
    base, samples = adversarial
    data, word = samples[name]
    with pytest.raises(UnsafeArtifactError) as exc:
        restricted_loads(data)
    assert word in str(exc.value)
    assert not (base / "PWNED").exists()


def test_the_existing_corpus_never_runs_under_restricted_load(scan_corpus: Any) -> None:
    loaded = refused = 0
    for sample in scan_corpus.samples:
        if sample.format not in ("pickle", "joblib") or sample.loader not in ("pickle", "joblib", None):
            continue
        try:
            restricted_load(sample.path)
            loaded += 1
            assert not sample.malicious or sample.loader is None, f"{sample.name} loaded"
        except UnsafeArtifactError:
            refused += 1
        assert not scan_corpus.canary.exists(), sample.name
    assert refused >= 20


def test_trailing_data_and_truncation_are_refused() -> None:
    good = pickle.dumps([1, 2])
    with pytest.raises(UnsafeArtifactError, match="follows the pickle"):
        restricted_loads(good + good)
    with pytest.raises(UnsafeArtifactError, match="not a valid pickle"):
        restricted_loads(good[:-3])


def test_joblib_array_with_a_lying_shape_is_refused_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "a.joblib"
    joblib.dump({"x": np.zeros(4)}, path, protocol=2)  # no frames: the edit below keeps the file valid
    data = path.read_bytes()
    # the shape tuple (4,) -> a shape of 2**40 elements; the data are 32 bytes
    old = b"K\x04\x85"
    assert data.count(old) == 1
    lie = data.replace(old, b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85")
    with pytest.raises(UnsafeArtifactError, match="truncated"):
        restricted_loads(lie)


def test_joblib_object_array_payload_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    path = tmp_path / "o.joblib"
    joblib.dump({"o": np.array([Evil()], dtype=object)}, path, compress=("gzip", 3))
    with pytest.raises(UnsafeArtifactError, match=r"builtins\.print"):
        restricted_load(path)


@pytest.mark.parametrize(
    ("allow", "ok"),
    [(["tests.scan.test_restricted.Plain"], True), (["os.system"], False), (["builtins.getattr"], False),
     (["not a name"], False), (["tests.scan.test_restricted.Plain\n"], False)],
)
def test_operator_allow_list(allow: list[str], ok: bool) -> None:
    data = pickle.dumps(Plain(3))
    with pytest.raises(UnsafeArtifactError, match="not on the allowlist"):
        restricted_loads(data)
    if ok:
        loaded = restricted_loads(data, allow=allow)
        assert isinstance(loaded, Plain) and loaded.x == 3
    else:
        with pytest.raises(UnsafeArtifactError):
            restricted_loads(data, allow=allow)


class Plain:
    def __init__(self, x: int) -> None:
        self.x = x


def test_nested_torch_bytes_use_torch_weights_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(4.0)
    allow = ["torch.storage._load_from_bytes"]  # not on the allowlist: the scanner cannot see inside
    with pytest.raises(UnsafeArtifactError, match="not on the allowlist"):
        restricted_loads(pickle.dumps(t))
    loaded = restricted_loads(pickle.dumps(t), allow=allow)
    assert torch.equal(loaded, t)  # type: ignore[arg-type]
    # a nested torch payload is refused by torch's weights-only unpickler
    buf = io.BytesIO()

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    torch.save({"x": Evil()}, buf)
    data = _p(_call(G("torch.storage", "_load_from_bytes"), A.value(buf.getvalue())))
    with pytest.raises(UnsafeArtifactError, match="_load_from_bytes failed"):
        restricted_loads(data, allow=allow)


def test_bad_path_and_type() -> None:
    with pytest.raises(UnsafeArtifactError, match="cannot be opened"):
        restricted_load("/nonexistent/model.pkl")
    with pytest.raises(UnsafeArtifactError, match="needs bytes"):
        restricted_loads("text")  # type: ignore[arg-type]
