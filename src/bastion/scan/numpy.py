"""NumPy ``.npy`` files (``.npz`` is a zip of them): header sanity, and object arrays' embedded pickle.

``np.load(allow_pickle=True)`` unpickles object arrays, so their pickle gets the full analysis.
"""

from __future__ import annotations

import re
import struct

from bastion.scan.interface import FormatScanner, Severity
from bastion.scan.pickle import analyze_pickle_stream

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO, Any

    from bastion.scan.interface import ScanContext

__all__ = ["NumpyScanner", "descr_itemsize"]

_REM = "Re-save the array with numpy.save from a trusted environment (never with allow_pickle)."


# Type codes numpy.lib.format writes for plain (non-object) dtypes, and their item sizes. Any other
# spelling ('O', 'object', 'object_', 'O8', unknown names) is treated as holding objects: numpy.load
# decides by ``dtype.hasobject`` after ``numpy.dtype(descr)``, which accepts many spellings.
_ONE_CHAR = {"?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8, "Q": 8,
             "p": 8, "P": 8, "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32}
_PLAIN = re.compile(r"[<>|=]?(?:(?P<one>[?bBhHiIlLqQpPefdgFDG])|(?P<kind>[biufcSUVa])(?P<n>[0-9]{1,12})"
                    r"|(?P<dt>[mM])8(?:\[[0-9]{0,6}(?:Y|M|W|D|h|m|s|ms|us|ns|ps|fs|as|generic)\])?)")


def descr_itemsize(descr: Any) -> tuple[int | None, bool]:
    """(itemsize or None when not computed, has_object) for an ``.npy`` ``descr``.

    Fails closed: a descr this function cannot prove to be plain data counts as holding objects.
    """
    if isinstance(descr, str):
        m = _PLAIN.fullmatch(descr)
        if m is None:
            return None, True
        if m.group("one"):
            return _ONE_CHAR[m.group("one")], False
        if m.group("dt"):
            return 8, False
        size = int(m.group("n"))
        return (size * 4 if m.group("kind") == "U" else size), False
    if isinstance(descr, tuple):
        # a sub-array: (base descr, shape); numpy.dtype((base, shape)) has objects when its base does
        if len(descr) != 2:
            return None, True
        base, shape = descr
        base_size, obj = descr_itemsize(base)
        dims = (shape,) if isinstance(shape, int) else shape
        if not isinstance(dims, tuple) or not all(isinstance(d, int) and d >= 0 for d in dims):
            return None, True
        count = 1
        for d in dims:
            count *= d
        return (base_size * count if base_size is not None else None), obj
    if isinstance(descr, list):
        total = 0
        has_object = False
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                return None, True
            fdescr = field[1] if len(field) == 2 else (field[1], field[2])
            fsize, obj = descr_itemsize(fdescr)
            has_object = has_object or obj
            if fsize is None:
                total = -1
            elif total >= 0:
                total += fsize
        return (total if total >= 0 else None), has_object
    return None, True


class NumpyScanner(FormatScanner):
    """``.npy`` arrays (format versions 1.0, 2.0, 3.0)."""

    name = "numpy"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"\x93NUMPY")

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        fixed = stream.read(10)
        if len(fixed) < 10:
            ctx.add("numpy.bad-header", Severity.HIGH, "npy header", "The .npy file is truncated inside its "
                    "header.", _REM, offset=0)
            return
        major, minor = fixed[6], fixed[7]
        if major == 1:
            hlen = struct.unpack("<H", fixed[8:10])[0]
            start = 10
        elif major in (2, 3):
            more = fixed[8:10] + stream.read(2)
            if len(more) < 4:
                ctx.add("numpy.bad-header", Severity.HIGH, "npy header", "The .npy file is truncated inside its "
                        "header.", _REM, offset=0)
                return
            hlen = struct.unpack("<I", more)[0]
            start = 12
        else:
            ctx.add("numpy.bad-header", Severity.HIGH, f"npy version {major}.{minor}",
                    f"Unknown .npy format version {major}.{minor}.", _REM, offset=6)
            return
        if hlen > ctx.limits.max_header_bytes:
            ctx.add("numpy.bad-header", Severity.HIGH, f"header of {hlen} bytes",
                    f"The .npy header claims {hlen} bytes (ScanLimits.max_header_bytes is "
                    f"{ctx.limits.max_header_bytes}).", _REM, offset=8)
            return
        raw = stream.read(hlen)
        if len(raw) < hlen:
            ctx.add("numpy.bad-header", Severity.HIGH, "npy header", "The .npy file is truncated inside its "
                    "header.", _REM, offset=start)
            return
        header = self._parse_header(raw, major, ctx, start)
        if header is None:
            return
        descr, shape = header["descr"], header["shape"]
        itemsize, has_object = descr_itemsize(descr)
        data_start = start + hlen
        if has_object:
            ctx.label = "numpy-object"
            ctx.add("numpy.object-array", Severity.LOW, f"dtype {descr!r}",
                    "The array holds Python objects; numpy.load needs allow_pickle=True and unpickles them. "
                    "The embedded pickle was analysed (see other findings for this file).",
                    "Prefer numeric dtypes; never pass allow_pickle=True for untrusted files.", offset=data_start)
            analyze_pickle_stream(stream, ctx, base=data_start, joblib_arrays=False)
            return
        if itemsize is None or ctx.size is None:
            return
        count = 1
        for d in shape:
            count *= d
        expected = count * itemsize
        actual = ctx.size - data_start
        if actual < expected:
            ctx.add("numpy.truncated", Severity.MEDIUM, f"shape {shape}",
                    f"The header promises {expected} bytes of data but only {actual} follow.", _REM,
                    offset=data_start)
        elif actual > expected:
            ctx.add("numpy.trailing-data", Severity.MEDIUM, f"{actual - expected} extra bytes",
                    f"{actual - expected} bytes follow the array data; numpy ignores them, other readers may "
                    "not (a place to hide a payload).", _REM, offset=data_start + expected)

    def _parse_header(self, raw: bytes, major: int, ctx: ScanContext, start: int) -> dict[str, Any] | None:
        encoding = "utf-8" if major == 3 else "latin-1"
        try:
            text = raw.decode(encoding)
            import ast

            header = ast.literal_eval(text)
        except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError, TypeError) as exc:
            ctx.add("numpy.bad-header", Severity.HIGH, "npy header", f"The .npy header is not a Python literal "
                    f"({type(exc).__name__}).", _REM, offset=start)
            return None
        if (
            not isinstance(header, dict)
            or set(header) != {"descr", "fortran_order", "shape"}
            or not isinstance(header["shape"], tuple)
            or not all(isinstance(d, int) and d >= 0 for d in header["shape"])
            or not isinstance(header["fortran_order"], bool)
        ):
            ctx.add("numpy.bad-header", Severity.HIGH, "npy header",
                    "The .npy header must be a dict with exactly 'descr', 'fortran_order' (bool) and 'shape' "
                    f"(non-negative ints); got {str(header)[:120]!r}.", _REM, offset=start)
            return None
        return header
