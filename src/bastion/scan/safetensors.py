"""safetensors files: header size against the file size, JSON validity, dtypes, offsets and overlaps.

safetensors holds no code; a damaged header is still a finding because loaders disagree on it.
"""

from __future__ import annotations

import itertools
import json
import struct

from bastion.scan.interface import FormatScanner, Severity

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO, Any

    from bastion.scan.interface import ScanContext

__all__ = ["DTYPE_SIZES", "SafetensorsScanner"]

DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1,
    "F6_E3M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8,
    "I64": 8, "F64": 8, "C64": 8,
}
_REM = "Re-export the tensors with the safetensors library from a trusted environment."


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


class SafetensorsScanner(FormatScanner):
    """The safetensors format (8-byte little-endian header length, JSON header, raw tensor data)."""

    name = "safetensors"

    def sniff(self, head: bytes) -> bool:
        return len(head) >= 9 and head[8:9] == b"{"

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        def bad(construct: str, message: str, severity: Severity = Severity.HIGH, offset: int | None = 8) -> None:
            ctx.add("safetensors.invalid", severity, construct, message, _REM, offset=offset)

        (hlen,) = struct.unpack("<Q", stream.read(8))
        size = ctx.size
        if hlen > ctx.limits.max_header_bytes or (size is not None and 8 + hlen > size):
            bad("header length", f"The header claims {hlen} bytes, but the file has {size} bytes "
                f"(limit {ctx.limits.max_header_bytes}); loaders would read past the end or exhaust memory.",
                offset=0)
            return
        raw = stream.read(hlen)
        if len(raw) != hlen:
            bad("header length", f"The file ends inside its {hlen}-byte header.", offset=0)
            return
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            bad("header JSON", f"The header is not valid JSON ({exc}).")
            return
        if not isinstance(header, dict):
            bad("header JSON", "The header must be a JSON object.")
            return
        data_len = None if size is None else size - 8 - hlen
        spans: list[tuple[int, int, str]] = []
        for name, entry in header.items():
            if name == "__metadata__":
                if not isinstance(entry, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in entry.items()
                ):
                    bad("__metadata__", "__metadata__ must map strings to strings.")
                continue
            if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
                bad(f"tensor {name!r}", f"Tensor {name!r} must have exactly dtype, shape and data_offsets.")
                continue
            dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
            if dtype not in DTYPE_SIZES:
                bad(f"tensor {name!r}", f"Tensor {name!r} has unknown dtype {dtype!r}.")
                continue
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                bad(f"tensor {name!r}", f"Tensor {name!r} has an invalid shape {shape!r}.")
                continue
            if (
                not isinstance(offsets, list)
                or len(offsets) != 2
                or not all(isinstance(o, int) and o >= 0 for o in offsets)
                or offsets[0] > offsets[1]
            ):
                bad(f"tensor {name!r}", f"Tensor {name!r} has invalid data_offsets {offsets!r}.")
                continue
            begin, end = offsets
            if data_len is not None and end > data_len:
                bad(f"tensor {name!r}", f"Tensor {name!r} ends at byte {end} of a {data_len}-byte data "
                    "section (out-of-bounds read).")
                continue
            count = 1
            for d in shape:
                count *= d
            nbytes = count * DTYPE_SIZES[dtype]
            if dtype in ("F4", "F6_E2M3", "F6_E3M2"):
                nbytes = -1  # sub-byte types pack several values per byte
            if nbytes >= 0 and end - begin != nbytes:
                bad(f"tensor {name!r}", f"Tensor {name!r} spans {end - begin} bytes but its dtype and shape "
                    f"need {nbytes}.")
            spans.append((begin, end, name))
        spans.sort()
        for (_b1, e1, n1), (b2, _e2, n2) in itertools.pairwise(spans):
            if b2 < e1:
                bad(f"tensors {n1!r}, {n2!r}", f"Tensors {n1!r} and {n2!r} overlap in the data section.")
        covered = 0
        for b, e, _n in spans:
            if b > covered:
                ctx.add("safetensors.gap", Severity.LOW, "unused bytes", f"{b - covered} bytes of the data "
                        "section belong to no tensor (room for hidden content).", _REM, offset=8 + hlen + covered)
            covered = max(covered, e)
        if data_len is not None and data_len > covered and spans:
            ctx.add("safetensors.gap", Severity.LOW, "trailing bytes", f"{data_len - covered} bytes after the "
                    "last tensor belong to no tensor.", _REM, offset=8 + hlen + covered)
