"""ONNX models, read with a small protobuf reader (no ``onnx`` dependency): custom-op domains and
external-data paths that leave the model folder.
"""

from __future__ import annotations

from bastion.scan._streams import is_real_file, spool
from bastion.scan.interface import FormatScanner, Severity

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO

    from bastion.scan.interface import ScanContext

__all__ = ["STANDARD_DOMAINS", "OnnxScanner"]

#: Operator domains implemented by ONNX itself and by onnxruntime's built-in kernels.
STANDARD_DOMAINS = frozenset(
    {
        "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training", "ai.onnx.preview",
        "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.ms.internal.nhwc",
        "com.microsoft.dml", "org.pytorch.aten",
    }
)
_REM_DOMAIN = (
    "Custom operators run native code from a library the serving process must load; ship that library "
    "only from a trusted build, or re-export the model with standard operators."
)
_REM_EXTERNAL = "Keep external data files next to the model with plain relative names, then scan the folder."
_MAX_DEPTH = 32
_MAX_STR = 1 << 16


class _Bad(Exception):
    pass


class _Reader:
    def __init__(self, stream: IO[bytes], ctx: ScanContext) -> None:
        self.s = stream
        self.ctx = ctx
        self.custom: dict[str, set[str]] = {}
        self.functions: set[tuple[str, str]] = set()
        self.fields = 0

    def varint(self) -> int:
        result = 0
        shift = 0
        while True:
            b = self.s.read(1)
            if not b:
                raise _Bad("varint truncated")
            result |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise _Bad("varint too long")

    def fields_of(self, end: int) -> list[tuple[int, int, int]]:
        """(field, wire, value-or-length) for each field up to ``end``; positions left at value start."""
        out = []
        while self.s.tell() < end:
            self.fields += 1
            if self.fields & 0xFFF == 0:
                self.ctx.check_time()
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                out.append((number, 0, self.varint()))
            elif wire == 1:
                self.s.seek(8, 1)
            elif wire == 5:
                self.s.seek(4, 1)
            elif wire == 2:
                n = self.varint()
                start = self.s.tell()
                if start + n > end:
                    raise _Bad(f"field {number} runs past its message")
                out.append((number, 2, start))
                out.append((number, -1, n))
                self.s.seek(start + n)
            else:
                raise _Bad(f"unsupported wire type {wire}")
        if self.s.tell() != end:
            raise _Bad("message overruns its length")
        return out

    def messages(self, end: int) -> dict[int, list[tuple[int, int]]]:
        found: dict[int, list[tuple[int, int]]] = {}
        items = self.fields_of(end)
        for i, (number, wire, value) in enumerate(items):
            if wire == 2:
                found.setdefault(number, []).append((value, items[i + 1][2]))
            elif wire == 0:
                found.setdefault(number, []).append((-1, value))
        return found

    def text(self, span: tuple[int, int]) -> str:
        start, n = span
        if n > _MAX_STR:
            raise _Bad("string too long")
        self.s.seek(start)
        return self.s.read(n).decode("utf-8", "replace")

    # ModelProto: 7 graph, 8 opset_import, 20 training_info, 25 functions
    def model(self, size: int) -> None:
        top = self.messages(size)
        for start, n in top.get(25, []):
            self.s.seek(start)
            fn = self.messages(start + n)
            name = self.text(fn[1][0]) if 1 in fn else ""
            domain = self.text(fn[10][0]) if 10 in fn else ""
            self.functions.add((domain, name))
        for start, n in top.get(25, []):
            self.s.seek(start)
            fn = self.messages(start + n)
            for s2, n2 in fn.get(7, []):
                self.node(s2, n2, 1)
        for start, n in top.get(7, []):
            self.graph(start, n, 1)
        for start, n in top.get(20, []):
            self.s.seek(start)
            info = self.messages(start + n)
            for number in (1, 2):
                for s2, n2 in info.get(number, []):
                    self.graph(s2, n2, 1)

    # GraphProto: 1 node, 5 initializer, 15 sparse_initializer
    def graph(self, start: int, n: int, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _Bad("subgraphs nested too deep")
        self.s.seek(start)
        g = self.messages(start + n)
        for s2, n2 in g.get(1, []):
            self.node(s2, n2, depth)
        for s2, n2 in g.get(5, []):
            self.tensor(s2, n2)
        for s2, n2 in g.get(15, []):
            self.s.seek(s2)
            sparse = self.messages(s2 + n2)
            for number in (1, 2):
                for s3, n3 in sparse.get(number, []):
                    self.tensor(s3, n3)

    # NodeProto: 4 op_type, 7 domain, 5 attribute
    def node(self, start: int, n: int, depth: int) -> None:
        self.s.seek(start)
        node = self.messages(start + n)
        op = self.text(node[4][0]) if 4 in node else ""
        domain = self.text(node[7][0]) if 7 in node else ""
        if domain not in STANDARD_DOMAINS and (domain, op) not in self.functions:
            self.custom.setdefault(domain, set()).add(op)
        # AttributeProto: 5 t, 6 g, 10 tensors, 11 graphs
        for s2, n2 in node.get(5, []):
            self.s.seek(s2)
            attr = self.messages(s2 + n2)
            for number in (6, 11):
                for s3, n3 in attr.get(number, []):
                    self.graph(s3, n3, depth + 1)
            for number in (5, 10):
                for s3, n3 in attr.get(number, []):
                    self.tensor(s3, n3)

    # TensorProto: 8 name, 13 external_data (1 key, 2 value), 14 data_location
    def tensor(self, start: int, n: int) -> None:
        self.s.seek(start)
        t = self.messages(start + n)
        external = any(v == 1 for _s, v in t.get(14, []))
        if not external and 13 not in t:
            return
        name = self.text(t[8][0]) if 8 in t else "?"
        for s2, n2 in t.get(13, []):
            self.s.seek(s2)
            entry = self.messages(s2 + n2)
            key = self.text(entry[1][0]) if 1 in entry else ""
            value = self.text(entry[2][0]) if 2 in entry else ""
            if key != "location":
                continue
            why = _escapes(value)
            if why is not None:
                self.ctx.add("onnx.external-data-escape", Severity.HIGH, f"tensor {name!r} -> {value!r}",
                             f"Tensor {name!r} reads its data from {value!r} ({why}), outside the model folder; "
                             "loading the model reads that file (path traversal).", _REM_EXTERNAL)
            else:
                self.ctx.add("onnx.external-data", Severity.INFO, f"tensor {name!r} -> {value!r}",
                             f"Tensor {name!r} keeps its data in the separate file {value!r}.",
                             "Scan and ship that file with the model.")


def _escapes(location: str) -> str | None:
    norm = location.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    if ".." in norm.split("/"):
        return "parent-directory component"
    if "://" in norm:
        return "URL"
    if "\x00" in norm:
        return "NUL byte"
    return None


class OnnxScanner(FormatScanner):
    """ONNX ModelProto files."""

    name = "onnx"

    def sniff(self, head: bytes) -> bool:
        from bastion.scan.detect import looks_like_onnx

        return looks_like_onnx(head)

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        if not is_real_file(stream):
            stream = spool(stream, ctx)
        stream.seek(0, 2)
        size = stream.tell()
        stream.seek(0)
        reader = _Reader(stream, ctx)
        try:
            reader.model(size)
        except (_Bad, OSError) as exc:
            ctx.add("onnx.malformed", Severity.HIGH, "ModelProto", f"The ONNX protobuf cannot be parsed ({exc}); "
                    "onnxruntime may read it differently.", "Re-export the model and scan it again.")
        for domain, ops in sorted(reader.custom.items()):
            ctx.add("onnx.custom-domain", Severity.HIGH, f"domain {domain!r}: {', '.join(sorted(ops))}",
                    f"The graph uses operators from the custom domain {domain!r} ({', '.join(sorted(ops))}); "
                    "running it needs a native custom-op library.", _REM_DOMAIN)
