"""TensorFlow SavedModel and frozen GraphDef protobufs: the graph's operations, read without TensorFlow.

A graph runs only TensorFlow kernels, with one family of exceptions: ``PyFunc``, ``PyFuncStateless`` and
``EagerPyFunc`` call a Python function of the process that runs the graph (looked up by a token; the
function itself is never in the file). Such graphs are reported (MEDIUM); other operations are not judged.
"""

from __future__ import annotations

from bastion.scan.interface import Severity

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from bastion.scan.interface import ScanContext

__all__ = ["PYTHON_OPS", "graph_ops", "scan_graph"]

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
_MAX_BYTES = 64 << 20


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """One protobuf message as (field number, wire type, value); raises ValueError when it does not parse."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, wire, value))
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("length beyond the message")
            out.append((number, wire, buf[pos:pos + n]))
            pos += n
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > len(buf):
                raise ValueError("truncated fixed field")
        else:
            raise ValueError(f"wire type {wire}")
    return out


def _sub(fields: list[tuple[int, int, int | bytes]], number: int) -> list[bytes]:
    found = []
    for n, wire, value in fields:
        if n == number:
            if wire != 2 or not isinstance(value, bytes):
                raise ValueError(f"field {number} is not a message")
            found.append(value)
    return found


def _node_ops(graph: bytes) -> list[str]:
    """Ops of a GraphDef's nodes and of the nodes of its function library."""
    fields = _fields(graph)
    nodes = _sub(fields, 1)
    for library in _sub(fields, 2):
        for function in _sub(_fields(library), 1):
            nodes += _sub(_fields(function), 3)
    ops = []
    for node in nodes:
        for op in _sub(_fields(node), 2):
            ops.append(op.decode("utf-8"))
    return ops


def graph_ops(data: bytes) -> list[str] | None:
    """The operations of a SavedModel (``saved_model.pb``) or a frozen GraphDef; None when ``data`` is neither."""
    try:
        top = _fields(data)
        if not top:
            return None
        if {n for n, _, _ in top} <= {1, 2} and any(n == 2 for n, _, _ in top):  # SavedModel: version, meta graphs
            ops = []
            for meta in _sub(top, 2):
                for graph in _sub(_fields(meta), 2):
                    ops += _node_ops(graph)
            if ops:
                return ops
        ops = _node_ops(data)  # a GraphDef: nodes (1), library (2), versions (4)
        return ops if ops and {n for n, _, _ in top} <= {1, 2, 3, 4} else None
    except (ValueError, UnicodeDecodeError):
        return None


def looks_like_graph(head: bytes) -> bool:
    """Cheap pre-check: a protobuf whose first field is a SavedModel's or GraphDef's."""
    return len(head) >= 8 and head[0] in (0x08, 0x0A, 0x12) and b"\x12" in head[:64]


def scan_graph(data: bytes, ctx: ScanContext) -> bool:
    """Report Python-callback ops of a TensorFlow graph; returns True when ``data`` is one."""
    if len(data) > _MAX_BYTES:
        return False
    ops = graph_ops(data)
    if ops is None:
        return False
    found = sorted(set(ops) & PYTHON_OPS)
    if found:
        ctx.add("tensorflow.python-op", Severity.MEDIUM, ", ".join(found),
                f"The TensorFlow graph has {', '.join(found)} operations, which call a Python function of the "
                "process that runs the graph (looked up by a token; the code is not in the file). The graph "
                "cannot run outside the program that registered those functions, and there it runs them.",
                "Export the model without tf.py_function/tf.numpy_function (or to ONNX) before serving it.")
    return True
