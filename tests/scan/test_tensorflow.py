"""TensorFlow SavedModel / GraphDef protobufs read without TensorFlow: Python-callback ops are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.scan import Severity, scan_path
from bastion.scan.tensorflow import graph_ops


def _ld(field: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([field << 3 | 2, len(payload)]) + payload


def _node(name: str, op: str) -> bytes:
    return _ld(1, _ld(1, name.encode()) + _ld(2, op.encode()))


def _saved_model(graph: bytes) -> bytes:
    return b"\x08\x01" + _ld(2, _ld(2, graph))


_FUNCTION_WITH_PYFUNC = _ld(2, _ld(1, _ld(3, _ld(1, b"f") + _ld(2, b"EagerPyFunc"))))


@pytest.mark.parametrize(
    ("data", "ops", "flagged"),
    [
        (_saved_model(_node("c", "Const") + _node("y", "MatMul")), ["Const", "MatMul"], False),
        (_saved_model(_node("c", "Const") + _node("bad", "PyFunc")), ["Const", "PyFunc"], True),
        (_saved_model(_node("c", "Const") + _FUNCTION_WITH_PYFUNC), ["Const", "EagerPyFunc"], True),
        (_node("c", "Const") + _node("p", "PyFuncStateless"), ["Const", "PyFuncStateless"], True),  # frozen graph
    ],
)
def test_graph_ops(tmp_path: Path, data: bytes, ops: list[str], flagged: bool) -> None:
    assert graph_ops(data) == ops
    path = tmp_path / "saved_model.pb"
    path.write_bytes(data)
    report = scan_path(path)
    assert report.files[0].format == "tensorflow"
    found = [f for f in report.findings if f.rule_id == "tensorflow.python-op"]
    assert bool(found) is flagged
    assert all(f.severity == Severity.MEDIUM for f in found)


@pytest.mark.parametrize("data", [b"", b"\x12\x7f\x12", b"\x08\x01\x12\x03\x12\x01", b"hello world, not a graph",
                                  _saved_model(_node("c", "Const"))[:-3]])
def test_not_a_graph(data: bytes) -> None:
    assert graph_ops(data) is None
