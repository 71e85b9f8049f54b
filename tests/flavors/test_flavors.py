"""Every flavor: detected by content, validated on register (loads restricted, predicts on its dataset), loaded
through one adapter with the framework's own outputs, and refused with the reason when it does not hold."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bastion.errors import BastionError, ConfigError, DataError, UnsafeArtifactError
from bastion.flavors import detect_flavor, get_flavor, is_servable
from tests.flavors import builders as b
from tests.flavors.conftest import copy_to

FLAVOR_FILES = [("onnx", "onnx"), ("onnx_zipmap", "onnx"), ("xgboost", "xgboost"), ("xgboost_ubj", "xgboost"),
                ("lightgbm", "lightgbm"), ("skops", "skops")]


@pytest.mark.parametrize(("key", "flavor"), FLAVOR_FILES)
def test_detected_by_content_even_when_renamed(artifacts: dict[str, Any], tmp_path: Path, key: str,
                                               flavor: str) -> None:
    assert detect_flavor(artifacts[key]) is not None and detect_flavor(artifacts[key])[1] == flavor  # type: ignore[index]
    if flavor in ("onnx", "lightgbm", "skops"):  # these need no file name at all
        renamed = copy_to(artifacts[key], tmp_path, "model.bin")
        assert detect_flavor(renamed)[1] == flavor  # type: ignore[index]


@pytest.mark.parametrize(("content", "name"), [
    (b"just some notes\n", "notes.txt"),
    (b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00PAR1", "pii.parquet"),
    (b'{"name": "not a model"}', "config.json"),
    (b"", "empty.onnx.txt"),
])
def test_non_model_files_are_no_flavor(tmp_path: Path, content: bytes, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    assert detect_flavor(p) is None


@pytest.mark.parametrize(("key", "flavor"), FLAVOR_FILES)
def test_register_load_and_predict_equal_the_framework(project: Any, artifacts: dict[str, Any], key: str,
                                                       flavor: str) -> None:
    df = artifacts["frame"]
    dv = project.register_dataset(df, name="credit")
    mv = project.log_model(artifacts[key], name="m", datasets=[dv.ref])
    assert (mv.flavor, mv.scan_status) == (flavor, "clean")
    doc = project.attachments(mv.ref, "flavor")[-1]
    assert doc["flavor"] == flavor and doc["task"] == "classification" and doc["classes"] == [0, 1]
    assert doc["requirements"] and doc["requirements"][0] == mv.framework
    assert any("predicted on 5 rows of credit:1" in n for n in doc["notes"])
    model = project.load_model(mv.ref)
    x = df[b.FEATURES].iloc[:50]
    proba = model.predict_proba(x)
    labels = model.predict(x)
    if key == "onnx_zipmap":
        import onnxruntime as ort

        sess = ort.InferenceSession(artifacts[key].read_bytes(), providers=["CPUExecutionProvider"])
        want_l, want_p = sess.run(None, {"X": x.to_numpy(dtype=np.float32)})
        want_p = [row[1] for row in want_p]
    else:
        raw: Any = artifacts[key].read_bytes() if key == "onnx" else artifacts.get(f"{key}_model", artifacts[key])
        if key in ("xgboost", "xgboost_ubj", "lightgbm"):
            raw = artifacts[key]
        want_l, want_p = b.framework_predictions(flavor, raw, x)
    assert labels.tolist() == list(want_l)
    np.testing.assert_allclose(proba[:, 1], want_p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_arrays_and_frames_give_the_same_answers(project: Any, artifacts: dict[str, Any]) -> None:
    df = artifacts["frame"]
    for key in ("onnx", "xgboost", "lightgbm"):
        model = get_flavor(key).load(artifacts[key].read_bytes(), what=key)
        x = df[b.FEATURES].iloc[:20]
        assert model.predict(x).tolist() == model.predict(x.to_numpy()).tolist()
        if key != "onnx":  # named features are taken by name from a frame, whatever its column order
            assert model.predict(x[b.FEATURES[::-1]]).tolist() == model.predict(x).tolist()
            with pytest.raises(ValueError, match="lacks the model's features"):
                model.predict(x.drop(columns=["age"]))


def test_pytorch_network_exported_to_onnx(project: Any, tmp_path: Path) -> None:
    """The documented path for PyTorch: torch.onnx.export with a softmax output named 'probabilities'."""
    import torch

    torch.manual_seed(0)
    df = b.frame(400)
    x = torch.tensor(df[b.FEATURES].to_numpy(dtype=np.float32))
    x = (x - x.mean(0)) / x.std(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2), torch.nn.Softmax(dim=1))
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        # torch 2.9+ prefers its dynamo exporter (which needs onnxscript); the TorchScript one is still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (x[:1],), str(path), input_names=["features"], output_names=["probabilities"],
                          dynamic_axes={"features": {0: "n"}, "probabilities": {0: "n"}}, dynamo=False)
    frame = pd.DataFrame(x.numpy(), columns=b.FEATURES).assign(label=df["label"].to_numpy())
    dv = project.register_dataset(frame, name="z")
    mv = project.log_model(path, name="net", datasets=[dv.ref])
    assert mv.flavor == "onnx"
    model = project.load_model(mv.ref)
    with torch.no_grad():
        want = net(x[:30]).numpy()
    np.testing.assert_allclose(model.predict_proba(frame[b.FEATURES].iloc[:30]), want, rtol=1e-5, atol=1e-6)
    assert model.predict(frame[b.FEATURES].iloc[:30]).tolist() == want.argmax(axis=1).tolist()


# ------------------------------------------------------------------------------------------------ refusals


def test_a_non_model_file_is_refused_unless_stored_opaque(project: Any, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("patient 123, John Doe, 555-0100\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"not a model format.*--flavor file"):
        project.log_model(notes, name="notes")
    table = tmp_path / "pii.parquet"
    pd.DataFrame({"ssn": ["123-45-6789"], "name": ["Jane"]}).to_parquet(table)
    with pytest.raises(DataError, match="not a model format"):
        project.log_model(table, name="pii")
    assert project.list_models() == []
    mv = project.log_model(notes, name="notes", flavor="file")  # on purpose: scanned, signed, versioned
    assert mv.flavor == "file" and not is_servable("file")
    with pytest.raises(UnsafeArtifactError, match=r"does not load itself.*cannot\s+be gated or served"):
        project.load_model(mv.ref)
    from bastion.gates.run import run_gate

    with pytest.raises(UnsafeArtifactError, match=r"cannot\s+be gated or served"):
        run_gate(project, mv.ref, {"version": 1, "name": "p", "checks": {"performance": {}}},
                 pd.DataFrame({"a": [1.0], "y": [1]}), "y")


def test_truncated_onnx_is_refused(project: Any, artifacts: dict[str, Any], tmp_path: Path) -> None:
    data = artifacts["onnx"].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeArtifactError, match=r"Refusing to register cut.onnx.*onnx.malformed"):
        project.log_model(cut, name="cut")  # the scanner sees it first
    _no_scan(project)
    with pytest.raises(DataError, match=r"Refusing to register cut.onnx.*could not be loaded by onnxruntime"):
        project.log_model(cut, name="cut")  # and loading it as its flavor refuses it too
    assert project.list_models() == []


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda d: d.pop("learner"), "no 'learner' object"),
    (lambda d: d.update(version="2.1"), "'version' is not a list"),
    (lambda d: d["learner"].pop("gradient_booster"), "learner.gradient_booster"),
    (lambda d: d["learner"]["gradient_booster"].update(name="evil"), "not gbtree, dart or gblinear"),
    (lambda d: d["learner"]["learner_model_param"].update(num_class="many"), "num_class"),
    (lambda d: d["learner"].update(feature_names=[1, 2]), "feature_names"),
    (lambda d: d["learner"]["gradient_booster"]["model"].update(trees="nope"), "could not be loaded by XGBoost"),
])
def test_xgboost_json_with_a_wrong_schema_is_refused(project: Any, artifacts: dict[str, Any], tmp_path: Path,
                                                     mutate: Any, why: str) -> None:
    import json

    doc = json.loads(artifacts["xgboost"].read_text())
    mutate(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=why):
        project.log_model(bad, name="bad", flavor="xgboost")
    assert project.list_models() == []


def _no_scan(project: Any) -> None:
    from dataclasses import replace

    project.settings = replace(project.settings, scan_on_register=False)


@pytest.mark.parametrize(("damage", "why"), [
    (lambda t: t[: len(t) // 3], "end of trees"),  # LightGBM itself aborts the process on this one
    (lambda t: t[: len(t) // 3] + "\nend of trees\n", "tree_sizes"),
    (lambda t: t.replace("end of trees", "end of forest"), "end of trees"),
    (lambda t: t.replace("tree_sizes=", "tree_sizes=1 "), "tree_sizes"),
    (lambda t: t.replace("Tree=3", "Tree=x"), "tree_sizes"),
])
def test_damaged_lightgbm_text_is_refused(project: Any, artifacts: dict[str, Any], tmp_path: Path, damage: Any,
                                          why: str) -> None:
    text = artifacts["lightgbm"].read_text()
    bad = tmp_path / "bad.txt"
    bad.write_text(damage(text))
    _no_scan(project)
    with pytest.raises(DataError, match=f"Refusing to register bad.txt.*{why}"):
        project.log_model(bad, name="bad")


class _Sneaky:
    def __reduce__(self) -> Any:
        return (os.system, (f"touch {os.environ.get('BASTION_TEST_MARKER', '/nonexistent/marker')}",))


class _NotAllowed:
    pass


@pytest.mark.parametrize("payload", [_Sneaky, _NotAllowed], ids=["os.system", "custom-class"])
def test_joblib_holding_a_non_allowlisted_object_is_refused(project: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, payload: Any) -> None:
    import joblib

    marker = tmp_path / "ran"
    monkeypatch.setenv("BASTION_TEST_MARKER", str(marker))
    path = tmp_path / "model.joblib"
    joblib.dump({"model": payload()}, path)
    with pytest.raises(UnsafeArtifactError, match=r"Refusing to register model.joblib"):
        project.log_model(path, name="j")
    assert not marker.exists() and project.list_models() == []


def test_joblib_is_never_loaded_by_plain_unpickling(project: Any, tmp_path: Path) -> None:
    """A clean joblib scikit-learn model is detected as joblib (not a broken pickle) and only ever reaches the
    restricted unpickler; --convert skops stores a skops copy when that unpickler can build it."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    df = b.frame(200)
    path = tmp_path / "lr.joblib"
    joblib.dump(LogisticRegression(max_iter=5000).fit(df[b.FEATURES], df["label"]), path)
    assert detect_flavor(path)[1] == "joblib"  # type: ignore[index]
    try:
        import bastion.scan.restricted  # noqa: F401
    except ImportError:
        mv = project.log_model(path, name="lr")
        assert mv.flavor == "joblib"
        with pytest.raises(UnsafeArtifactError, match="restricted unpickler"):
            project.load_model(mv.ref)
        with pytest.raises(UnsafeArtifactError, match="restricted unpickler"):
            project.log_model(path, name="lr", convert="skops")
    else:
        mv = project.log_model(path, name="lr", convert="skops")
        assert mv.flavor == "skops"
        assert project.load_model(mv.ref).predict(df[b.FEATURES]).shape == (200,)


@pytest.mark.parametrize(("flavor", "key"), [("onnx", "xgboost"), ("xgboost", "lightgbm"), ("lightgbm", "onnx"),
                                             ("skops", "onnx")])
def test_a_forced_flavor_must_load_as_that_flavor(project: Any, artifacts: dict[str, Any], flavor: str,
                                                  key: str) -> None:
    with pytest.raises(BastionError, match="Refusing to register"):
        project.log_model(artifacts[key], name="x", flavor=flavor)


def test_unknown_flavor_and_bad_convert_are_usage_errors(project: Any, artifacts: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="Unknown model flavor 'tensorflow'"):
        project.log_model(artifacts["onnx"], name="x", flavor="tensorflow")
    with pytest.raises(DataError, match="converts pickle or joblib"):
        project.log_model(artifacts["onnx"], name="x", convert="skops")


@pytest.mark.parametrize("key", ["onnx", "xgboost", "lightgbm", "skops"])
def test_a_dataset_the_model_cannot_predict_on_is_refused(project: Any, artifacts: dict[str, Any], key: str) -> None:
    df = artifacts["frame"]
    dv = project.register_dataset(df[["age", "income", "label"]], name="narrow")
    with pytest.raises(DataError, match=r"Refusing to register .* with dataset narrow:1"):
        project.log_model(artifacts[key], name="x", datasets=[dv.ref])
    assert project.list_models() == []


@pytest.mark.parametrize(("module", "extra"), [("onnxruntime", "onnx"), ("xgboost", "xgboost"),
                                               ("lightgbm", "lightgbm")])
def test_a_missing_framework_names_its_extra(artifacts: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                             module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=rf"pip install 'bastion-mlops\[{extra}\]'"):
        get_flavor(extra).load(artifacts[extra].read_bytes(), what="m")


def test_model_show_displays_flavor_framework_and_signature(project: Any, artifacts: dict[str, Any],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from bastion.cli.main import main

    dv = project.register_dataset(artifacts["frame"], name="credit")
    project.log_model(artifacts["xgboost"], name="xgb", datasets=[dv.ref])
    project.log_model(artifacts["onnx"], name="onx", datasets=[dv.ref])

    def show(*args: str) -> str:
        capsys.readouterr()
        try:
            main(["model", "show", *args])
        except SystemExit as e:
            assert not e.code
        return capsys.readouterr().out

    out = show("xgb:1")
    assert "xgboost (gated and served, classification)" in out and "4 named features: age, income" in out
    doc = json.loads(show("onx:1", "--json"))["flavor_info"]
    assert doc["framework"].startswith("onnxruntime==") and doc["signature"]["tensors"][0]["shape"] == [None, 4]
    assert "input X: float[?x4]" in " ".join(show("onx:1").split())
