"""Keras: .keras zip configs (Lambda at any depth, custom objects) and HDF5 model_config attributes."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest

from bastion.scan import Severity, scan_bytes


def _layer(cls: str, name: str, **config: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": cls, "config": {"name": name, **config}, "registered_name": None}


def _model(layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": layers},
            "registered_name": None}


LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "config": {
    "name": "lam", "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA"}}},
    "registered_name": None}


def _keras_zip(config: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    return buf.getvalue()


def _rules(data: bytes) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in scan_bytes(data).findings:
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


def test_plain_model_is_clean() -> None:
    report = scan_bytes(_keras_zip(_model([_layer("Dense", "d", units=3, activation="relu")])))
    assert report.files[0].format == "keras"
    assert report.findings == ()


def test_lambda_layer_is_critical() -> None:
    assert _rules(_keras_zip(_model([_layer("Dense", "d"), LAMBDA])))["keras.lambda"] == Severity.CRITICAL


def test_lambda_in_nested_submodel_is_found() -> None:
    inner = {"module": "keras", "class_name": "Functional", "config": {"name": "inner", "layers": [
        {"module": "keras", "class_name": "Sequential", "config": {"name": "deeper", "layers": [LAMBDA]}}]}}
    report = scan_bytes(_keras_zip(_model([_layer("Dense", "d"), inner])))
    (finding,) = [f for f in report.findings if f.rule_id == "keras.lambda"]
    assert finding.severity == Severity.CRITICAL
    assert finding.inner_path == "config.json"
    assert "layers[1]" in finding.construct


@pytest.mark.parametrize(
    ("obj", "rule", "severity"),
    [
        ({"module": "my_pkg.layers", "class_name": "Custom", "config": {}}, "keras.custom-object", Severity.HIGH),
        ({"module": "builtins", "class_name": "function", "config": "eval"}, "keras.dangerous-object",
         Severity.CRITICAL),
        ({"module": "keras.utils", "class_name": "function", "config": "get_file"}, "keras.dangerous-object",
         Severity.CRITICAL),
        ({"module": None, "class_name": "MyLayer", "registered_name": "my_pkg>MyLayer", "config": {}},
         "keras.custom-object", Severity.HIGH),
        ({"class_name": "Dense", "config": {"function_type": "lambda"}, "function_type": "lambda"}, "keras.lambda",
         Severity.CRITICAL),
    ],
    ids=["foreign-module", "builtins-eval", "get-file", "registered", "keras2-lambda"],
)
def test_custom_objects(obj: dict[str, Any], rule: str, severity: Severity) -> None:
    assert _rules(_keras_zip(_model([_layer("Dense", "d"), obj])))[rule] == severity


def test_invalid_config_json_is_high() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", "{not json")
    assert _rules(buf.getvalue())["keras.bad-config"] == Severity.HIGH


def _h5(attr_json: str, *, extra: bytes = b"") -> bytes:
    # Attribute strings sit uncompressed in HDF5 object headers; this mimics that layout closely
    # enough for the byte-level reader (superblock magic, binary padding, NUL-terminated JSON).
    return b"\x89HDF\r\n\x1a\n" + b"\x00\x08\x08\x00" * 32 + attr_json.encode() + b"\x00" * 16 + extra


def test_h5_model_config_lambda_is_critical() -> None:
    config = json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"name": "l", "function": ["4wEAAAAA", None, None],
                                             "function_type": "lambda"}}]}})
    report = scan_bytes(_h5(config))
    assert report.files[0].format == "keras-hdf5"
    assert max(f.severity for f in report.findings) == Severity.CRITICAL


def test_h5_clean_config() -> None:
    config = json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense",
                                                                              "config": {"units": 2}}]}})
    assert scan_bytes(_h5(config)).findings == ()


def test_h5_lambda_marker_outside_config_is_high() -> None:
    found = _rules(_h5("", extra=b'garbage "function_type": "lambda" garbage'))
    assert found["keras.lambda"] == Severity.HIGH


@pytest.mark.parametrize(
    ("name", "lambda_found"),
    [("dense.h5", False), ("dense_vlen.h5", False), ("nested_lambda.h5", True), ("nested_lambda_vlen.h5", True)],
)
def test_real_hdf5_files(name: str, lambda_found: bool) -> None:
    # Written with h5py by data/make_fixtures.py: fixed-length and variable-length attribute strings.
    from pathlib import Path

    from bastion.scan import scan_path

    report = scan_path(Path(__file__).parent / "data" / "hdf5" / name)
    assert report.files[0].format == "keras-hdf5"
    rules = {f.rule_id: f.severity for f in report.findings}
    assert rules == ({"keras.lambda": Severity.CRITICAL} if lambda_found else {})
