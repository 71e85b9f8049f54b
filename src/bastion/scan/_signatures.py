"""Argument signatures of allowlisted callables, shared by the scanner and the restricted loader's docs.

An allowlisted callable is safe with data; the positions listed here may also hold a class (or one
named function), because the library's own pickles put one there. Anywhere else a global is a
call gadget. Sizes are checked for callables whose arguments are allocation sizes.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the scan's start-up path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["QSCHEMES", "TORCH_DTYPES", "TORCH_LAYOUTS", "TORCH_REBUILD_FROM_TYPE", "TORCH_SIGNATURES",
           "TORCH_TENSOR_MAKERS", "class_positions", "fits", "makes_callable", "oversized"]

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
        "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_xla_tensor",
    )
)
#: Globals whose call returns a tensor (what a "tensor" position of a rebuild helper may hold).
TORCH_TENSOR_MAKERS = _TORCH_REBUILDS | TORCH_REBUILD_FROM_TYPE

#: torch's dtype objects pickle as globals ``torch.<name>``.
TORCH_DTYPES = frozenset(
    f"torch.{n}" for n in (
        "float32", "float", "float64", "double", "float16", "half", "bfloat16", "complex32", "chalf", "complex64",
        "cfloat", "complex128", "cdouble", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "short", "int32",
        "int", "int64", "long", "bool", "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "float8_e4m3fn",
        "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits1x8",
        "bits2x4", "bits4x2", "bits8", "bits16", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
        "int1", "int2", "int3", "int4", "int5", "int6", "int7",
    )
)
QSCHEMES = frozenset(f"torch.{n}" for n in ("per_tensor_affine", "per_channel_affine", "per_tensor_symmetric",
                                             "per_channel_symmetric", "per_channel_affine_float_qparams"))
TORCH_LAYOUTS = frozenset(f"torch.{n}" for n in ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr",
                                                  "sparse_bsc", "_mkldnn", "jagged"))

# What each position of torch's rebuild helpers takes (torch/_utils.py, torch/_tensor.py, torch/serialization.py),
# and how many positions are required. Kinds:
#   storage   a storage (a persistent id inside a checkpoint)    tensor    the result of a tensor rebuild helper
#   int, bool, str, bytes   that constant                       shape     ints, or torch.Size of ints
#   hooks     None, a dict or an empty OrderedDict (torch stores it as _backward_hooks; hooks run on backward)
#   dtype     a torch dtype global                               layout    torch.serialization._get_layout(str)
#   qparams   (qscheme global, numbers or tensors...)           tensors   a tuple of tensors, shapes, constants
#   ndarray   a numpy array                                      device    a device string (or torch.device)
#   tclass    an allowlisted torch.Tensor subclass               state     None, or dicts of non-dunder names to data
#   data      constants and containers only
_REBUILD_TENSOR = ("storage", "int", "shape", "shape")
_DEVICE_FROM_NUMPY = ("ndarray", "dtype", "device", "bool")
TORCH_SIGNATURES: dict[str, tuple[tuple[str, ...], int]] = {
    "torch._utils._rebuild_tensor": (_REBUILD_TENSOR, 4),
    "torch._utils._rebuild_tensor_v2": ((*_REBUILD_TENSOR, "bool", "hooks", "data"), 6),
    "torch._utils._rebuild_tensor_v3": ((*_REBUILD_TENSOR, "bool", "hooks", "dtype", "data"), 7),
    "torch._utils._rebuild_parameter": (("tensor", "bool", "hooks"), 3),
    "torch._utils._rebuild_parameter_with_state": (("tensor", "bool", "hooks", "state"), 4),
    "torch._utils._rebuild_qtensor": ((*_REBUILD_TENSOR, "qparams", "bool", "hooks"), 7),
    "torch._utils._rebuild_sparse_tensor": (("layout", "tensors"), 2),
    "torch._utils._rebuild_nested_tensor": (("tensor", "tensor", "tensor", "tensor"), 4),
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": (("tensor", "dtype", "device", "bool"), 4),
    "torch._utils._rebuild_device_tensor_from_numpy": (_DEVICE_FROM_NUMPY, 4),
    "torch._utils._rebuild_xla_tensor": (_DEVICE_FROM_NUMPY, 4),
    "torch._utils._rebuild_meta_tensor_no_storage": (("dtype", "shape", "shape", "bool"), 4),
    "torch._utils._rebuild_wrapper_subclass": (("tclass", "dtype", "shape", "shape", "int", "layout", "device",
                                                "bool"), 8),
    "torch.serialization._get_layout": (("str",), 1),
    "torch.storage._load_from_bytes": (("bytes",), 1),
}
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


_LEGACY_TENSOR_TYPES = frozenset(f"torch.{n}Tensor" for n in ("Double", "Float", "Half", "BFloat16", "Long", "Int",
                                                                 "Short", "Char", "Byte", "Bool"))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def oversized(callee: str, args: tuple[Any, ...]) -> str | None:
    """A description of an attacker-sized operand in a call of ``callee``, or None."""
    if callee == "builtins.pow" and len(args) == 2:
        base, exp = _int(args[0]), _int(args[1])
        if base is not None and exp is not None and abs(base) > 1 and exp > 0 \
                and abs(base).bit_length() * exp > 8 * MAX_ALLOCATION // 64:
            return f"an exponent of {exp}"
    elif callee in _LEGACY_TENSOR_TYPES:
        total = 1
        for a in args:
            n = _int(a)
            if n is not None:
                total *= max(n, 0)
        if any(_int(a) is not None for a in args) and total > MAX_ALLOCATION:
            return f"a size of {total} elements (limit {MAX_ALLOCATION})"
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
