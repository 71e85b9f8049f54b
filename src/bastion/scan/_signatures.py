"""Argument signatures of allowlisted callables, shared by the scanner and the restricted loader's docs.

An allowlisted callable is safe with data; the positions listed here may also hold a class (or one
named function), because the library's own pickles put one there. Anywhere else a global is a
call gadget. Sizes are checked for callables whose arguments are allocation sizes.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the scan's start-up path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["TORCH_REBUILD_FROM_TYPE", "class_positions", "fits", "makes_callable", "oversized"]

#: Largest allocation (bytes or items) a pickle may ask an allowlisted call for without data behind it.
MAX_ALLOCATION = 1 << 28

_CLASS_FIRST = frozenset({0})
_POSITIONS: dict[str, frozenset[int]] = {
    "copyreg._reconstructor": frozenset({0, 1}),
    "copyreg.__newobj__": _CLASS_FIRST,
    "copyreg.__newobj_ex__": _CLASS_FIRST,
    "numpy._core.multiarray._reconstruct": _CLASS_FIRST,
    "numpy.core.multiarray._reconstruct": _CLASS_FIRST,
    "numpy.ma.core._mareconstruct": frozenset({0, 1}),
    "numpy.random._pickle.__bit_generator_ctor": _CLASS_FIRST,
    "numpy.random._pickle.__generator_ctor": frozenset({1}),
    "numpy.random._pickle.__randomstate_ctor": frozenset({1}),
    "functools.partial": _CLASS_FIRST,
    "collections.defaultdict": _CLASS_FIRST,
    "_collections.defaultdict": _CLASS_FIRST,
    "pandas.core.indexes.base._new_Index": _CLASS_FIRST,
    "pandas.core.indexes.datetimes._new_DatetimeIndex": _CLASS_FIRST,
    "pandas.core.indexes.period._new_PeriodIndex": _CLASS_FIRST,
    "pandas.core.indexes.interval._new_IntervalIndex": _CLASS_FIRST,
    "torch._tensor._rebuild_from_type_v2": frozenset({0, 1}),
    "torch._utils._rebuild_from_type_v2": frozenset({0, 1}),
    "torch._tensor._rebuild_from_type": frozenset({0, 1}),
}

TORCH_REBUILD_FROM_TYPE = frozenset(
    {"torch._tensor._rebuild_from_type_v2", "torch._utils._rebuild_from_type_v2", "torch._tensor._rebuild_from_type"}
)
_TORCH_REBUILDS = frozenset(
    f"torch._utils.{n}" for n in (
        "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
        "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
        "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass",
        "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor",
    )
)
# Positions that take one specific function, not a class: (callee, index) -> allowed names.
_EXACT: dict[tuple[str, int], frozenset[str]] = {
    ("numpy.random._pickle.__generator_ctor", 1): frozenset({"numpy.random._pickle.__bit_generator_ctor"}),
    ("numpy.random._pickle.__randomstate_ctor", 1): frozenset({"numpy.random._pickle.__bit_generator_ctor"}),
    **{(name, 0): _TORCH_REBUILDS for name in TORCH_REBUILD_FROM_TYPE},
}
# Globals whose call returns a callable (calling that result later is a call of their argument).
_MAKES_CALLABLE = frozenset({"functools.partial", "builtins.getattr", "operator.attrgetter",
                             "operator.methodcaller", "operator.itemgetter"})


def class_positions(callee: str) -> frozenset[str] | frozenset[int]:
    """Argument indexes of ``callee`` that may hold a global (a class, or the one named function)."""
    found = _POSITIONS.get(callee)
    if found is not None:
        return found
    last = callee.rpartition(".")[2]
    if last.startswith("__pyx_unpickle_") or last == "newObj":
        return _CLASS_FIRST
    return frozenset()


def fits(callee: str, index: int, value: str) -> bool:
    """Whether the global ``value`` may sit at ``index`` of a call of ``callee``."""
    exact = _EXACT.get((callee, index))
    if exact is not None:
        return value in exact
    if callee == "copyreg._reconstructor" and index == 1:
        return value in ("builtins.object", "builtins.int", "builtins.float", "builtins.str", "builtins.bytes",
                         "builtins.tuple", "builtins.list", "builtins.dict", "builtins.set", "builtins.frozenset",
                         "builtins.complex", "__builtin__.object")
    return True


def makes_callable(func: Any) -> bool:
    """True when ``func`` (a scanner ``_Global``) returns a callable."""
    module = getattr(func, "module", None)
    name = getattr(func, "name", None)
    return isinstance(module, str) and f"{module}.{name}" in _MAKES_CALLABLE


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def oversized(callee: str, args: tuple[Any, ...]) -> str | None:
    """A description of an attacker-sized operand in a call of ``callee``, or None."""
    if callee == "builtins.pow" and len(args) == 2:
        base, exp = _int(args[0]), _int(args[1])
        if base is not None and exp is not None and abs(base) > 1 and exp > 0 \
                and abs(base).bit_length() * exp > 8 * MAX_ALLOCATION // 64:
            return f"an exponent of {exp}"
    elif callee in ("builtins.bytes", "builtins.bytearray", "builtins.range", "builtins.list.__mul__"):
        for a in args:
            n = _int(a)
            if n is not None and n > MAX_ALLOCATION:
                return f"a size of {n} (limit {MAX_ALLOCATION})"
    elif callee in ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct",
                    "numpy.ndarray", "numpy._core.multiarray.ndarray"):
        shape = args[1] if callee.endswith("_reconstruct") and len(args) > 1 else (args[0] if args else ())
        dims = (shape,) if isinstance(shape, int) else shape
        if isinstance(dims, tuple) and all(_int(d) is not None for d in dims):
            total = 1
            for d in dims:
                total *= max(d, 0)
            if total > MAX_ALLOCATION:
                return f"a stated shape of {total} elements and no data behind it"
    return None
