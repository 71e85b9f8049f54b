"""ONNX: the hand-written protobuf reader finds custom-op domains and escaping external data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.scan import Severity, scan_bytes, scan_path
from bastion.scan.detect import detect_format


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(number: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _node(op: str, domain: str = "", *attrs: bytes) -> bytes:
    return _field(1, "x") + _field(2, "y") + _field(4, op) + (_field(7, domain) if domain else b"") + b"".join(
        _field(5, a) for a in attrs
    )


def _tensor(name: str, location: str | None = None) -> bytes:
    out = _field(1, 2) + _field(2, 1) + _field(8, name)
    if location is None:
        return out + _field(9, b"\0" * 8)
    return out + _field(13, _field(1, "location") + _field(2, location)) + _field(14, 1)


def _model(nodes: list[bytes], inits: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    graph = b"".join(_field(1, n) for n in nodes) + _field(2, "g") + b"".join(_field(5, t) for t in inits)
    return _field(1, 8) + _field(2, "skl2onnx") + _field(3, "1.0") + _field(7, graph) + _field(8, _field(2, 17))


def _rules(data: bytes) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in scan_bytes(data).findings:
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


def test_standard_model_is_clean() -> None:
    data = _model([_node("Relu"), _node("LinearClassifier", "ai.onnx.ml")], [_tensor("w")])
    assert detect_format(data) == "onnx"
    report = scan_bytes(data)
    assert report.files[0].format == "onnx"
    assert report.findings == ()


def test_custom_domain_is_high() -> None:
    found = _rules(_model([_node("Relu"), _node("RunShell", "com.evil.ops")]))
    assert found["onnx.custom-domain"] == Severity.HIGH


def test_custom_domain_in_subgraph_is_found() -> None:
    sub = _field(1, _node("Evil", "my.domain")) + _field(2, "body")
    attr = _field(1, "then_branch") + _field(6, sub)
    found = _rules(_model([_node("If", "", attr)]))
    assert found["onnx.custom-domain"] == Severity.HIGH


@pytest.mark.parametrize("location", ["/etc/passwd", "../../secrets.bin", "..\\..\\x", "C:/x", "http://h/x"])
def test_escaping_external_data_is_high(location: str) -> None:
    found = _rules(_model([_node("Relu")], [_tensor("w", location)]))
    assert found["onnx.external-data-escape"] == Severity.HIGH


def test_local_external_data_is_info(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(_model([_node("Relu")], [_tensor("w", "weights.bin")]))
    report = scan_path(tmp_path / "m.onnx")
    assert [(f.rule_id, f.severity) for f in report.findings] == [("onnx.external-data", Severity.INFO)]


def test_truncated_protobuf_is_high() -> None:
    data = _model([_node("Relu")], [_tensor("w")])
    assert _rules(data[:-3])["onnx.malformed"] == Severity.HIGH


def test_real_skl2onnx_models_are_clean() -> None:
    report = scan_path(Path(__file__).parent / "data" / "onnx")
    assert {f.format for f in report.files} == {"onnx"}
    assert report.findings == ()
