"""joblib files: the pickle stream with NumPy arrays written inline after each ``NumpyArrayWrapper``.

The pickle analyser calls in here to size each inline array so it can skip it (compressed
joblib files arrive through the archive module's decompressors).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import Any

__all__ = ["WRAPPERS", "dtype_itemsize"]

#: Globals whose BUILD makes ``joblib.load`` read raw array bytes from the stream.
WRAPPERS = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)


def dtype_itemsize(dtype: Any) -> tuple[int, bool] | None:
    """(itemsize, has_object) of a simulated ``numpy.dtype(code, ...)`` call, or None when unknown.

    ``dtype`` is the analyser's record of the call: ``args`` (``('f8', False, True)``) and the
    ``state`` BUILD gave it (``(3, '<', subarray, names, fields, elsize, alignment, flags)``).
    """
    args = getattr(dtype, "args", None)
    if not isinstance(args, tuple) or not args:
        return None
    code = args[0]
    if not isinstance(code, str) or not code:
        return None
    state = getattr(dtype, "state", None)
    elsize = -1
    flags = 0
    if isinstance(state, tuple) and len(state) >= 8:
        if isinstance(state[5], int):
            elsize = state[5]
        if isinstance(state[7], int):
            flags = state[7]
    kind = code[0]
    has_object = kind == "O" or bool(flags & 1)  # NPY_ITEM_REFCOUNT: the dtype holds objects
    if elsize > 0:
        return elsize, has_object
    digits = code[1:]
    if not digits.isdigit():
        return None
    size = int(digits)
    if kind == "U":
        size *= 4
    return size, has_object
