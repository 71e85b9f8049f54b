"""Argument signatures of allowlisted callables, shared by the scanner and the restricted loader's docs.

An allowlisted callable is safe with data; the positions listed here may also hold a class (or one
named function), because the library's own pickles put one there. Anywhere else a global is a
call gadget. Sizes are checked for callables whose arguments are allocation sizes.
"""

from __future__ import annotations

from functools import cache as _cache

TYPE_CHECKING = False  # typing stays off the scan's start-up path
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CODE_ATTRIBUTES",
    "CONSTANTS",
    "CONSTRUCTIBLE",
    "CONSTRUCTIBLE_MODULES",
    "QSCHEMES",
    "SAFE_PARAMETERS",
    "SCIPY_ARGPARSER_TEMPLATE",
    "TORCH_DTYPES",
    "TORCH_LAYOUTS",
    "TORCH_REBUILD_FROM_TYPE",
    "TORCH_SIGNATURES",
    "TORCH_TENSOR_MAKERS",
    "callable_with_arguments",
    "class_positions",
    "fits",
    "functions",
    "makes_callable",
    "oversized",
    "unsafe_parameter",
    "unsafe_state",
]

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


# -- constructor calls ------------------------------------------------------------------------------
# A class is called with arguments (REDUCE, INST, OBJ, or later through functools.partial) only when the
# library's own pickles do so: that runs its constructor, and constructors are where classes open files
# (pandas.ExcelWriter truncates its path, xgboost/lightgbm Booster(model_file=...) and pandas.ExcelFile read
# any file). Every other allowlisted class is built the way pickle builds objects: ``cls.__new__`` (NEWOBJ,
# copyreg.__newobj__/_reconstructor) and then its state (BUILD). Refuse by default: a class not named here
# is refused when called with arguments.
CONSTRUCTIBLE = frozenset({
    *(f"builtins.{n}" for n in ("bytearray", "bytes", "complex", "frozenset", "range", "set", "slice", "int",
                                "float", "str", "bool", "list", "dict", "tuple")),
    *(f"collections.{n}" for n in ("OrderedDict", "defaultdict", "deque", "Counter", "ChainMap")),
    *(f"_collections.{n}" for n in ("OrderedDict", "defaultdict", "deque")),
    *(f"datetime.{n}" for n in ("datetime", "date", "time", "timedelta", "timezone")),
    "decimal.Decimal", "fractions.Fraction", "uuid.UUID", "array.array", "zoneinfo.ZoneInfo",
    "functools.partial",  # its own signature checks what it wraps (a function or a class listed here)
    *(f"pathlib.{p}{n}" for p in ("", "_local.") for n in ("PosixPath", "PurePosixPath", "WindowsPath",
                                                         "PureWindowsPath")),
    "builtins.object",
    # NumPy's scalar types: estimators keep them as their output dtype (OneHotEncoder(dtype=numpy.float64))
    *(f"numpy.{n}" for n in ("float64", "float32", "float16", "float128", "longdouble", "double", "single", "half",
                             "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intc", "uintc",
                             "intp", "uintp", "int_", "uint", "byte", "ubyte", "short", "ushort", "long", "ulong",
                             "longlong", "ulonglong", "bool", "bool_", "complex64", "complex128", "complex256",
                             "csingle", "cdouble", "clongdouble", "str_", "bytes_", "object_", "datetime64",
                             "timedelta64", "void")),
    "numpy.dtype", "numpy._core.multiarray.dtype", "numpy.core.multiarray.dtype",
    "numpy.ndarray", "numpy._core.multiarray.ndarray", "numpy.core.multiarray.ndarray",
    "pandas.Interval", "pandas.Period", "pandas.PeriodDtype", "pandas.StringDtype", "pandas.CategoricalDtype",
    "pandas.IntervalDtype", "pandas.DatetimeTZDtype", "pandas.SparseDtype", "pandas.ArrowDtype",
    "pandas._libs.sparse.IntIndex", "pandas._libs.sparse.BlockIndex",
    "pandas.core.internals.managers.BlockManager", "pandas.core.internals.managers.SingleBlockManager",
    "sklearn.tree._tree.Tree",
    "torch.Size", "torch.device",
    *(f"torch.{n}Tensor" for n in ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
                                   "Bool")),
    # enumerations (called with their value)
    "numpy._CopyMode", "pandas._libs.lib._NoDefault", "pandas._libs.tslibs.dtypes.FreqGroup",
    "pandas._libs.tslibs.dtypes.NpyDatetimeUnit", "pandas._libs.tslibs.dtypes.Resolution",
    "sklearn.ensemble._hist_gradient_boosting.common.MonotonicConstraint", "sklearn.utils._cython_blas.BLAS_Order",
    "sklearn.utils._cython_blas.BLAS_Trans", "sklearn.utils._isfinite.FiniteStatus", "scipy.special._specfun.Status",
    *(f"pandas.core.interchange.dataframe_protocol.{n}" for n in ("ColumnNullType", "DlpackDeviceType", "DtypeKind")),
    *(f"torch.nn.attention.{n}" for n in ("bias.CausalVariant", "flex_attention._ModificationType",
                                          "experimental._scaled_dot_product_attention_quantized.DescaleType")),
    "torch.nn.utils.parametrizations._OrthMaps",
})
#: Modules every class of which is a value type the library's pickles rebuild by calling it (date offsets,
#: scikit-learn's Cython loss functions).
CONSTRUCTIBLE_MODULES = frozenset({
    "pandas._libs.tslibs.offsets", "pandas.tseries.offsets", "sklearn._loss._loss", "sklearn.linear_model._sgd_fast",
})
#: Allowlisted globals that are values, not callables: data wherever they appear (pandas' NA in a StringDtype).
CONSTANTS = frozenset({
    "builtins.Ellipsis", "builtins.NotImplemented", "pandas.NA", "pandas._libs.missing.NA", "pandas.NaT",
    "pandas._libs.tslibs.nattype.NaT", "pytz.utc", "pytz.UTC",
})


@_cache
def functions() -> frozenset[str]:
    """Allowlisted globals that are functions, not classes (``functions.txt``)."""
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "functions.txt")
    with open(path, encoding="utf-8") as fh:
        return frozenset(s for s in (line.split("#", 1)[0].strip() for line in fh) if s)


def callable_with_arguments(callee: str) -> bool:
    """Whether calling the allowlisted global ``callee`` with arguments may run (a function, a listed class)."""
    if callee in CONSTRUCTIBLE or callee in functions():
        return True
    module, _, last = callee.rpartition(".")
    return module in CONSTRUCTIBLE_MODULES or last.startswith("__pyx_unpickle_") or last == "newObj"


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


# -- parameters a fitted model acts on at predict time ------------------------------------------------------
#: (class, attribute) -> the only values a model may carry there. Object state is data to the unpickler, but
#: some values make the model touch the host later: CountVectorizer(input="filename") opens every document it
#: is asked to transform as a path, so a served model reads (or blocks on, /dev/zero) the files its requests
#: name. Subclasses are matched through their method resolution order.
SAFE_PARAMETERS: dict[tuple[str, str], frozenset[str]] = {
    (f"sklearn.feature_extraction.text.{cls}", "input"): frozenset({"content"})
    for cls in ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")
}
_SAFE_BY_CLASS: dict[str, dict[str, frozenset[str]]] = {}
for (_cls, _attr), _values in SAFE_PARAMETERS.items():
    _SAFE_BY_CLASS.setdefault(_cls, {})[_attr] = _values


#: scipy.stats distributions ``exec()`` their ``_parse_arg_template`` attribute when unpickled
#: (``rv_generic.__setstate__`` -> ``_attach_argparser_methods``), so object state is code there. The only text
#: allowed is what scipy itself generates (``scipy.stats._distn_infrastructure.parse_arg_template``, unchanged
#: since scipy 1.6; a test compares this copy with the installed scipy): shape names are identifiers, and the
#: loc/scale part is the continuous or the discrete one.
SCIPY_ARGPARSER_TEMPLATE = (
    "\ndef _parse_args(self, %(shape_arg_str)s %(locscale_in)s):\n"
    "    return (%(shape_arg_str)s), %(locscale_out)s\n\n"
    "def _parse_args_rvs(self, %(shape_arg_str)s %(locscale_in)s, size=None):\n"
    "    return self._argcheck_rvs(%(shape_arg_str)s %(locscale_out)s, size=size)\n\n"
    "def _parse_args_stats(self, %(shape_arg_str)s %(locscale_in)s, moments='mv'):\n"
    "    return (%(shape_arg_str)s), %(locscale_out)s, moments\n"
)
CODE_ATTRIBUTES = frozenset({"_parse_arg_template"})


@_cache
def _argparser_patterns() -> tuple[Any, ...]:
    import re

    out = []
    for loc_in, loc_out in (("loc=0, scale=1", "loc, scale"), ("loc=0", "loc, 1")):
        first = True
        pattern = ""
        for part in re.split(r"(%\(\w+\)s)", SCIPY_ARGPARSER_TEMPLATE):
            if part == "%(shape_arg_str)s":
                pattern += r"(?P<shapes>(?:[A-Za-z_][A-Za-z0-9_]*, )*)" if first else "(?P=shapes)"
                first = False
            elif part == "%(locscale_in)s":
                pattern += re.escape(loc_in)
            elif part == "%(locscale_out)s":
                pattern += re.escape(loc_out)
            else:
                pattern += re.escape(part)
        out.append(re.compile(pattern))
    return tuple(out)


def scipy_argparser_ok(text: Any) -> bool:
    """Whether ``text`` is an argument-parser template scipy itself would generate (it gets ``exec()``-ed)."""
    return isinstance(text, str) and any(p.fullmatch(text) for p in _argparser_patterns())


def unsafe_parameter(cls: str, attr: Any, value: Any) -> str | None:
    """A description when setting ``attr`` to ``value`` on an instance of ``cls`` is unsafe, else None."""
    if attr in CODE_ATTRIBUTES and cls.startswith("scipy.stats."):
        if scipy_argparser_ok(value):
            return None
        return (f"{cls.rpartition('.')[2]}._parse_arg_template to code scipy did not generate (scipy exec()s this "
                "attribute when the distribution is unpickled)")
    allowed = _SAFE_BY_CLASS.get(cls, {}).get(attr) if isinstance(attr, str) else None
    if allowed is None or (isinstance(value, str) and value in allowed):
        return None
    shown = repr(value) if isinstance(value, str | int | float | type(None)) else "a computed value"
    return f"{cls.rpartition('.')[2]}.{attr} = {shown} (only {', '.join(map(repr, sorted(allowed)))} is safe)"


def unsafe_state(obj: Any, *, limit: int = 200_000) -> str | None:
    """Walk a loaded object graph; a description of the first instance carrying an unsafe parameter value."""
    stack = [obj]
    seen: set[int] = set()
    while stack and len(seen) < limit:
        v = stack.pop()
        if id(v) in seen or isinstance(v, str | bytes | int | float | bool | type(None) | type):
            continue
        seen.add(id(v))
        if isinstance(v, list | tuple | set | frozenset):
            stack.extend(v)
            continue
        if isinstance(v, dict):
            stack.extend(v.values())
            continue
        kind = type(v)
        dtype = getattr(v, "dtype", None)
        if getattr(dtype, "hasobject", False) and kind.__module__.startswith("numpy"):
            stack.extend(v.ravel()[:limit].tolist())
            continue
        inst = getattr(v, "__dict__", None)
        if not isinstance(inst, dict):
            continue
        for base in kind.__mro__:
            name = f"{base.__module__}.{base.__qualname__}"
            checks = _SAFE_BY_CLASS.get(name, {}).keys() | (CODE_ATTRIBUTES if name.startswith("scipy.stats.") else ())
            for attr in checks:
                if attr in inst:
                    bad = unsafe_parameter(name, attr, inst[attr])
                    if bad is not None:
                        return bad
        stack.extend(inst.values())
    return None
