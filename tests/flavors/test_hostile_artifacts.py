"""Bring-your-own-model artifacts built to hurt: a pickle disguised as a native booster file, ONNX graphs with
huge declared dimensions, custom operator domains, external data inside or outside their folder, and an
allocation bomb; each is refused at registration and nothing is registered.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.errors import DataError, UnsafeArtifactError


def _onnx(dest: Path, *, shape: list[Any], domain: str = "", op: str = "Add", external: str | None = None) -> Path:
    """A one-output regression graph y = sum(op(x, w), axis=1) with the given input shape."""
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.ones([1], dtype=np.float32), "w")
    if external is not None:
        w.data_location = TensorProto.EXTERNAL
        w.ClearField("raw_data")
        entry = w.external_data.add()
        entry.key, entry.value = "location", external
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [helper.make_node(op, ["x", "w"], ["t"], domain=domain),
             helper.make_node("ReduceSum", ["t", "axes"], ["y"], keepdims=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0]])], [w, axes])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    save(helper.make_model(graph, opset_imports=opsets), dest)
    return dest


def _bomb(dest: Path) -> Path:
    """Predicting allocates a 100,000 x 100,000 float tensor (40 GB) whatever the input."""
    from onnx import TensorProto, helper, numpy_helper, save

    shape = numpy_helper.from_array(np.array([100_000, 100_000], dtype=np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"]),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0), helper.make_node("Add", ["x", "s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])], [shape])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), dest)
    return dest


def test_a_plain_onnx_graph_registers(project: Any, tmp_path: Path) -> None:
    """The control: the same builder with nothing hostile registers and loads."""
    mv = project.log_model(_onnx(tmp_path / "ok.onnx", shape=["N", 4]), name="m")
    assert mv.flavor == "onnx" and project.load_model(mv.ref).predict(np.ones((2, 4))).tolist() == [8.0, 8.0]


@pytest.mark.parametrize(("build", "error", "match"), [
    (lambda d: _onnx(d / "wide.onnx", shape=["N", 10**9]), DataError, "declares 1000000000 input features"),
    (lambda d: _onnx(d / "batch.onnx", shape=[2**62, 4]), DataError, "did not run on a generated batch"),
    (lambda d: _onnx(d / "custom.onnx", shape=["N", 4], domain="evil.custom", op="Pwn"), UnsafeArtifactError,
     "custom domain 'evil.custom'"),
    (lambda d: _onnx(d / "up.onnx", shape=["N", 4], external="../../../../etc/hostname"), UnsafeArtifactError,
     "external-data-escape"),
    (lambda d: _onnx(d / "abs.onnx", shape=["N", 4], external="/etc/hostname"), UnsafeArtifactError,
     "external-data-escape"),
    (lambda d: _onnx(d / "beside.onnx", shape=["N", 4], external="w.bin"), DataError,
     "could not be loaded by onnxruntime"),
    (_bomb, DataError, "did not run on a generated batch"),
], ids=["huge-feature-dim", "huge-batch-dim", "custom-domain", "external-parent", "external-absolute",
        "external-beside", "allocation-bomb"])
def test_hostile_onnx_graphs_are_refused_at_registration(project: Any, tmp_path: Path, build: Any,
                                                          error: type[Exception], match: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w.bin").write_bytes(np.ones(1, dtype=np.float32).tobytes())
    monkeypatch.chdir(tmp_path)  # a model loaded from bytes would resolve external data here
    path = build(tmp_path if build is not _bomb else tmp_path / "bomb.onnx")
    with pytest.raises(error, match=match):
        project.log_model(path, name="m")
    assert project.list_models() == []


@pytest.mark.parametrize(("suffix", "match"), [
    (".json", "disguised as another format is refused"), (".ubj", "disguised as another format is refused"),
    (".txt", "disguised as another format is refused"), (".skops", "disguised as another format is refused"),
    (".safetensors", "disguised as another format is refused"),
    (".onnx", "could not be loaded by onnxruntime"),  # taken for ONNX by its name, and refused by the runtime
])
def test_a_pickle_named_as_a_native_format_is_refused(project: Any, tmp_path: Path, suffix: str, match: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"learner": {}}))  # harmless content: the disguise alone is refused
    with pytest.raises(DataError, match=match):
        project.log_model(path, name="m")
    assert project.list_models() == []


@pytest.mark.parametrize(("key", "suffix"), [("xgboost_model", ".json"), ("xgboost_model", ".ubj"),
                                             ("lightgbm_model", ".txt")])
def test_a_real_booster_pickled_under_its_native_name_is_refused(project: Any, tmp_path: Path,
                                                                 artifacts: dict[str, Any], key: str,
                                                                 suffix: str) -> None:
    booster = artifacts[key]
    path = tmp_path / f"booster{suffix}"
    path.write_bytes(pickle.dumps(booster))
    with pytest.raises(DataError, match="is a pickle file, not the"):
        project.log_model(path, name="m")
    assert project.list_models() == []
    # the same pickle under a pickle name is a pickle (restricted unpickler), and the native save still works
    native = artifacts["xgboost" if key.startswith("xgboost") else "lightgbm"]
    assert project.log_model(native, name="m").flavor in ("xgboost", "lightgbm")


_DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["segfault-booster.ubj", "abort-booster.txt"])
def test_a_booster_file_that_crashes_its_parser_is_refused_and_this_process_lives(project: Any, tmp_path: Path,
                                                                                  name: str) -> None:
    """Fuzzed XGBoost UBJSON and LightGBM text files (xgboost 3.2, lightgbm 4.7) that kill the process parsing
    them (SIGSEGV, SIGABRT): registration parses them in a child first, so they are a refusal, not a crash."""
    path = tmp_path / name
    path.write_bytes((_DATA / name).read_bytes())
    with pytest.raises((UnsafeArtifactError, DataError), match="Refusing to register"):
        project.log_model(path, name="m")
    assert project.list_models() == []


def test_the_parse_check_refuses_a_crash_and_recovers(project: Any, artifacts: dict[str, Any], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The mechanism itself, with a child that dies by SIGSEGV on a marked file: the registration is refused
    naming the signal, and the next one gets a fresh child and registers."""
    from bastion.flavors import _isolate

    crashing = ("import os, signal, struct, sys\nwhile True:\n    kind = sys.stdin.buffer.readline()\n"
                "    if not kind: break\n    (n,) = struct.unpack('!Q', sys.stdin.buffer.read(8))\n"
                "    data = sys.stdin.buffer.read(n)\n"
                "    if b'booster' in data[:64]: os.kill(os.getpid(), signal.SIGSEGV)\n"
                "    sys.stdout.buffer.write(b'ok\\n'); sys.stdout.buffer.flush()\n")
    monkeypatch.setattr(_isolate, "_CHILD", crashing)
    monkeypatch.setattr(_isolate, "_checker", None)
    marked = tmp_path / "marked.json"
    marked.write_bytes(b'{"booster": 1, ' + artifacts["xgboost"].read_bytes()[1:])
    with pytest.raises(UnsafeArtifactError, match=r"isolated check process \(was killed by SIGSEGV\)"):
        project.log_model(marked, name="m")
    assert project.log_model(artifacts["xgboost"], name="m").flavor == "xgboost"  # a new child, and it survives
    assert _isolate._checker is not None and _isolate._checker.alive()
    _isolate._checker.close()
