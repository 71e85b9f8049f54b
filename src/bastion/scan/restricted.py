"""Restricted loading of pickle and joblib artifacts: the scanner's allowlist enforced at load time.

``restricted_load(path)`` reads plain pickles and joblib files (every joblib compressor, inline
NumPy arrays) with CPython's own pure-Python unpickler, so every opcode keeps its exact meaning,
but each global is resolved only when it is on the allowlist, and every call the unpickler makes
(REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD's ``__setstate__``, APPEND(S), SETITEM(S),
ADDITEMS) is checked against the callable's argument signature before it runs. Anything else
raises `bastion.errors.UnsafeArtifactError`: a scanner miss is a refused load, not code execution.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from bastion.errors import UnsafeArtifactError
from bastion.scan import _policy, _signatures

__all__ = ["MAX_ALLOCATION", "allowable", "restricted_load", "restricted_loads"]

#: Largest allocation (bytes, or items for ranges) an allowlisted call may be asked to make.
MAX_ALLOCATION = 1 << 28
_CHUNK = 1 << 24
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_REMEDY = (
    "Nothing was loaded. Re-export the model in a code-free format (skops, ONNX, safetensors) from a "
    "trusted environment; if you have audited the file, allow the named global explicitly."
)


class _Refused(Exception):
    """A check failed; turned into UnsafeArtifactError with the artifact's name."""


class _Global:
    """What ``find_class`` resolved: the real object and its allowlisted name."""

    __slots__ = ("name", "obj")

    def __init__(self, name: str, obj: Any) -> None:
        self.name = name
        self.obj = obj


Checker = Callable[["_RestrictedUnpickler", str, tuple[Any, ...], dict[str, Any]], None]

_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray, range, slice, type(Ellipsis),
            type(NotImplemented))
_CONTAINERS = (tuple, list, set, frozenset)


def _is_data(value: Any, loader: _RestrictedUnpickler, seen: set[int]) -> str | None:
    """None when ``value`` is inert data (no callable reachable inside it), else what was found."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, _SCALARS):
            if isinstance(v, range) and len(v) > MAX_ALLOCATION:
                return f"a range of {len(v)} items (limit {MAX_ALLOCATION})"
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        g = loader.resolved.get(id(v))
        if g is not None and g.name in _signatures.CONSTANTS:
            continue
        if isinstance(v, _CONTAINERS):
            stack.extend(v)
            continue
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
            continue
        if isinstance(v, type):
            return f"the class {_qualname(v)}"
        if callable(v):
            return f"the callable {_describe(v, loader)}"
        np = sys.modules.get("numpy")
        if np is not None and isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                stack.append(v.tolist())
            continue
        inst_dict = getattr(v, "__dict__", None)
        if isinstance(inst_dict, dict):
            bad = _planted(inst_dict)
            if bad is not None:
                return f"an object with an instance attribute {bad!r}"
    return None


_PLANTABLE = frozenset({"append", "extend", "add", "update", "read", "readline", "readinto", "write"})


def _planted(inst_dict: dict[Any, Any]) -> str | None:
    for key in inst_dict:
        if isinstance(key, str) and ((key.startswith("__") and key.endswith("__")) or key in _PLANTABLE):
            return key
    return None


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(value: Any, loader: _RestrictedUnpickler) -> str:
    g = loader.resolved.get(id(value))
    if g is not None:
        return g.name
    if isinstance(value, type):
        return _qualname(value)
    return f"{type(value).__module__}.{type(value).__qualname__} object"


# -- argument signatures --------------------------------------------------------------------------


def _data_only(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The default signature: every argument is inert data (no class, function or callable)."""
    loader.require_data(name, args, kwargs)


def _allowed_class(loader: _RestrictedUnpickler, value: Any, what: str, *, base: type | None = None) -> type:
    g = loader.resolved.get(id(value))
    if g is None or not isinstance(value, type):
        raise _Refused(f"{what} must be an allowlisted class; got {_describe(value, loader)}.")
    if base is not None and not issubclass(value, base):
        raise _Refused(f"{what} must be a subclass of {_qualname(base)}; got {g.name}.")
    return value


def _reconstructor(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if kwargs or len(args) != 3:
        raise _Refused(f"{name} takes (class, base, state); got {len(args)} arguments.")
    _allowed_class(loader, args[0], f"The class given to {name}")
    if args[1] not in (object, int, float, complex, str, bytes, tuple, list, dict, set, frozenset):
        raise _Refused(f"The base given to {name} must be a built-in type; got {_describe(args[1], loader)}.")
    loader.require_data(name, args[2:], {})


def _newobj(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not args:
        raise _Refused(f"{name} needs a class.")
    _allowed_class(loader, args[0], f"The class given to {name}")
    if name.endswith("__newobj_ex__"):
        if len(args) != 3 or not isinstance(args[1], tuple) or not isinstance(args[2], dict):
            raise _Refused(f"{name} takes (class, args, kwargs).")
        loader.require_data(name, args[1], args[2])
    else:
        loader.require_data(name, args[1:], kwargs)


def _np_reconstruct(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np

    if kwargs or len(args) != 3:
        raise _Refused(f"{name} takes (subtype, shape, dtype).")
    _allowed_class(loader, args[0], f"The array type given to {name}", base=np.ndarray)
    _shape_bytes(name, args[1], 1)
    loader.require_data(name, args[2:], {})


def _shape_bytes(name: str, shape: Any, itemsize: int) -> int:
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in dims):
        raise _Refused(f"{name} was given an invalid shape {shape!r}.")
    total = math.prod(dims) * max(itemsize, 1)
    if total > MAX_ALLOCATION:
        raise _Refused(f"{name} was asked to allocate {total} bytes (limit {MAX_ALLOCATION}).")
    return total


def _np_ndarray(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np

    loader.require_data(name, args, kwargs)
    shape = args[0] if args else kwargs.get("shape", ())
    try:
        itemsize = np.dtype(args[1] if len(args) > 1 else kwargs.get("dtype", float)).itemsize
    except (TypeError, ValueError) as e:
        raise _Refused(f"{name} was given an invalid dtype ({e}).") from None
    _shape_bytes(name, shape, itemsize)


def _np_scalar(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np

    if kwargs or not 1 <= len(args) <= 2 or not isinstance(args[0], np.dtype):
        raise _Refused(f"{name} takes (dtype, data).")
    loader.require_data(name, args[1:], {})


_BIT_GENERATORS = frozenset({"MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"})


def _bit_generator_ctor(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> None:
    import numpy as np

    if kwargs or len(args) > 1:
        raise _Refused(f"{name} takes one bit generator name or class.")
    if not args or (isinstance(args[0], str) and args[0] in _BIT_GENERATORS):
        return
    _allowed_class(loader, args[0], f"The bit generator given to {name}", base=np.random.BitGenerator)


def _generator_ctor(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np
    from numpy.random import _pickle as np_pickle

    if kwargs or len(args) > 2:
        raise _Refused(f"{name} takes (bit generator, constructor).")
    if args and not (isinstance(args[0], np.random.BitGenerator)
                     or (isinstance(args[0], str) and args[0] in _BIT_GENERATORS)):
        raise _Refused(f"{name} was given {_describe(args[0], loader)} as its bit generator.")
    ctor = getattr(np_pickle, "__bit_generator_ctor")
    if len(args) == 2 and args[1] is not ctor:
        raise _Refused(f"{name} calls its second argument; only numpy's own bit generator constructor may "
                       f"be there, got {_describe(args[1], loader)}.")


def _codecs_encode(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if kwargs or len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
        raise _Refused(f"{name} is allowed only as pickle writes it: (text, 'latin1').")


def _sized(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """bytes(n), bytearray(n) and friends: an integer argument is an allocation size."""
    loader.require_data(name, args, kwargs)
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and a > MAX_ALLOCATION:
            raise _Refused(f"{name} was asked to allocate {a} items (limit {MAX_ALLOCATION}).")


def _pow(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    loader.require_data(name, args, kwargs)
    if kwargs or not 2 <= len(args) <= 3:
        raise _Refused(f"{name} takes (base, exp[, mod]).")
    base, exp = args[0], args[1]
    if len(args) == 3 and args[2] is not None:
        return
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        if abs(base).bit_length() * exp > 8 * MAX_ALLOCATION // 64:
            raise _Refused(f"{name} with an exponent of {exp} would build a number too large to load.")


def _partial(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not args or id(args[0]) not in loader.resolved:
        raise _Refused(f"{name} must wrap an allowlisted global; got "
                       f"{_describe(args[0], loader) if args else 'nothing'}.")
    # the partial is called later with arguments: the same rule as a call now
    loader.constructor_check(loader.resolved[id(args[0])].name, args[0], (None,), f"{name} wrapping")
    loader.require_data(name, args[1:], kwargs)


def _defaultdict(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args and args[0] is not None:
        _allowed_class(loader, args[0], f"The default factory of {name}")
    loader.require_data(name, args[1:], kwargs)


def _getattr(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # Pickle writes classmethods as getattr(<class>, '<name>'): allowed per use, when the class and
    # the method are both on the allowlist (never a dunder).
    if kwargs or len(args) != 2 or not isinstance(args[1], str):
        raise _Refused("getattr is allowed only as getattr(<allowlisted class>, '<allowlisted method>').")
    g = loader.resolved.get(id(args[0]))
    attr = args[1]
    if g is None or not isinstance(args[0], type) or not attr.isidentifier() or attr.startswith("__"):
        raise _Refused(f"getattr({_describe(args[0], loader)}, {attr!r}) is not an allowlisted method lookup.")
    full = f"{g.name}.{attr}"
    if not loader.is_allowed(full):
        raise _Refused(f"getattr looks up {full}, which is not on the allowlist.")


_TORCH_REBUILDS = _signatures.TORCH_TENSOR_MAKERS - _signatures.TORCH_REBUILD_FROM_TYPE


def _torch_value(kind: str, value: Any, loader: _RestrictedUnpickler) -> bool:
    """Whether the real ``value`` is of ``kind`` (see ``_signatures.TORCH_SIGNATURES``)."""
    import numpy as np
    import torch

    def shape(v: Any) -> bool:
        return isinstance(v, tuple | list) and all(type(d) is int for d in v)

    if kind == "storage":
        return isinstance(value, torch.storage.TypedStorage | torch.UntypedStorage)
    if kind == "tensor":
        return isinstance(value, torch.Tensor)
    if kind in ("int", "bool", "str", "bytes"):
        return type(value) is {"int": int, "bool": bool, "str": str, "bytes": bytes}[kind]
    if kind == "shape":
        return shape(value)
    if kind == "hooks":
        return value is None or (type(value) in (dict, collections.OrderedDict) and not value)
    if kind == "dtype":
        return isinstance(value, torch.dtype)
    if kind == "layout":
        return isinstance(value, torch.layout)
    if kind == "qparams":
        return (isinstance(value, tuple) and bool(value) and isinstance(value[0], torch.qscheme)
                and all(isinstance(v, torch.Tensor) or _is_data(v, loader, set()) is None for v in value[1:]))
    if kind == "tensors":
        return isinstance(value, tuple | list) and all(
            isinstance(v, torch.Tensor) or shape(v) or v is None or type(v) in (bool, int) for v in value)
    if kind == "ndarray":
        return type(value) is np.ndarray and not value.dtype.hasobject
    if kind == "device":
        return isinstance(value, str | torch.device)
    if kind == "tclass":
        return isinstance(value, type) and issubclass(value, torch.Tensor) and id(value) in loader.resolved
    if kind == "state":
        parts = value if isinstance(value, tuple) and len(value) <= 2 else (value,)
        return all(v is None or (isinstance(v, dict) and _planted(v) is None and _is_data(v, loader, set()) is None)
                   for v in parts)
    return _is_data(value, loader, set()) is None


def _torch_rebuild(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """torch's rebuild helpers, position by position: storages, tensors, dtypes and constants where torch puts
    them, never a callable or an object whose attributes the helper would read or write."""
    kinds, required = _signatures.TORCH_SIGNATURES[name]
    if kwargs or not required <= len(args) <= len(kinds):
        raise _Refused(f"{name} takes {required} to {len(kinds)} positional arguments; got {len(args)}"
                       f"{' and keywords' if kwargs else ''}.")
    for index, (kind, value) in enumerate(zip(kinds, args, strict=False)):
        if not _torch_value(kind, value, loader):
            raise _Refused(f"{name} takes {kind} at position {index}; got {_describe(value, loader)}.")


def _legacy_tensor(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    loader.require_data(name, args, kwargs)
    sizes = [a for a in args if type(a) is int]
    if sizes and math.prod(max(a, 0) for a in sizes) > MAX_ALLOCATION:
        raise _Refused(f"{name} was asked to allocate {math.prod(sizes)} elements (limit {MAX_ALLOCATION}).")


def _rebuild_from_type(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> None:
    import torch

    # _rebuild_from_type_v2(func, new_type, args, state) calls func(*args), then sets every state item
    # as an attribute: func must be a tensor rebuild helper and args must pass its own signature.
    if kwargs or len(args) not in (3, 4):
        raise _Refused(f"{name} takes (function, type, args[, state]).")
    g = loader.resolved.get(id(args[0]))
    if g is None or g.name not in _TORCH_REBUILDS:
        raise _Refused(f"{name} calls its first argument; only torch's tensor rebuild helpers may be there, "
                       f"got {_describe(args[0], loader)}.")
    _allowed_class(loader, args[1], f"The tensor type given to {name}", base=torch.Tensor)
    if not isinstance(args[2], tuple):
        raise _Refused(f"{name} needs a tuple of arguments.")
    loader.check_call(g.name, args[2], {})
    if len(args) == 4:
        state = args[3]
        loader.require_data(name, (state,), {})
        if isinstance(state, dict):
            bad = _planted(state)
            if bad is not None:
                raise _Refused(f"{name} would set the attribute {bad!r} on the tensor.")
        elif state is not None and not (isinstance(state, tuple) and all(
                isinstance(s, dict) and _planted(s) is None for s in state if s is not None)):
            raise _Refused(f"{name} was given a state it cannot check.")


def _class_first(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Library unpickle helpers that instantiate their first argument (Cython ``__pyx_unpickle_*``,
    ``newObj``, pandas' ``_new_Index``): the class must be allowlisted, the rest is data."""
    if not args:
        raise _Refused(f"{name} needs a class as its first argument.")
    _allowed_class(loader, args[0], f"The class given to {name}")
    loader.require_data(name, args[1:], kwargs)


def _mareconstruct(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np

    if kwargs or len(args) != 4:
        raise _Refused(f"{name} takes (subtype, baseclass, shape, basetype).")
    _allowed_class(loader, args[0], f"The masked array type given to {name}", base=np.ma.MaskedArray)
    _allowed_class(loader, args[1], f"The base array type given to {name}", base=np.ndarray)
    _shape_bytes(name, args[2], 1)
    loader.require_data(name, args[3:], {})


def _torch_load_from_bytes(loader: _RestrictedUnpickler, name: str, args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> None:
    if kwargs or len(args) != 1 or not isinstance(args[0], bytes | bytearray):
        raise _Refused(f"{name} takes one bytes argument.")


_SIGNATURES: dict[str, Checker] = {
    "copyreg._reconstructor": _reconstructor,
    "copyreg.__newobj__": _newobj,
    "copyreg.__newobj_ex__": _newobj,
    "numpy._core.multiarray._reconstruct": _np_reconstruct,
    "numpy.core.multiarray._reconstruct": _np_reconstruct,
    "numpy.ndarray": _np_ndarray,
    "numpy._core.multiarray.ndarray": _np_ndarray,
    "numpy._core.multiarray.scalar": _np_scalar,
    "numpy.core.multiarray.scalar": _np_scalar,
    "numpy.random._pickle.__bit_generator_ctor": _bit_generator_ctor,
    "numpy.random._pickle.__generator_ctor": _generator_ctor,
    "numpy.random._pickle.__randomstate_ctor": _generator_ctor,
    "_codecs.encode": _codecs_encode,
    "builtins.bytes": _sized,
    "builtins.bytearray": _sized,
    "builtins.pow": _pow,
    "functools.partial": _partial,
    "collections.defaultdict": _defaultdict,
    "_collections.defaultdict": _defaultdict,
    "builtins.getattr": _getattr,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
    "torch._utils._rebuild_from_type_v2": _rebuild_from_type,
    "torch._tensor._rebuild_from_type": _rebuild_from_type,  # v1: sets the tensor's __dict__ to its state
    "torch.storage._load_from_bytes": _torch_load_from_bytes,
    **{n: _torch_rebuild for n in _signatures.TORCH_SIGNATURES if n != "torch.storage._load_from_bytes"},
    **{f"torch.{n}Tensor": _legacy_tensor for n in ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short",
                                                   "Char", "Byte", "Bool")},
    "numpy.ma.core._mareconstruct": _mareconstruct,
    "pandas.core.indexes.base._new_Index": _class_first,
    "pandas.core.indexes.datetimes._new_DatetimeIndex": _class_first,
    "pandas.core.indexes.period._new_PeriodIndex": _class_first,
    "pandas.core.indexes.interval._new_IntervalIndex": _class_first,
}


def _signature(name: str) -> Checker:
    sig = _SIGNATURES.get(name)
    if sig is not None:
        return sig
    last = name.rpartition(".")[2]
    if last.startswith("__pyx_unpickle_") or last == "newObj":
        return _class_first
    return _data_only


def _safe_load_from_bytes(b: bytes) -> Any:
    """Nested torch bytes are loaded by torch's own weights-only unpickler, never by plain pickle."""
    import torch

    return torch.load(io.BytesIO(b), weights_only=True)


# Allowed globals the loader substitutes: the real one would deserialise nested bytes unrestricted.
_SUBSTITUTES: dict[str, Callable[..., Any]] = {"torch.storage._load_from_bytes": _safe_load_from_bytes}
# Globals resolvable only for their per-use signature (critical in general, safe in one shape).
_GUARDED = frozenset({"builtins.getattr"})


# CPython's pure-Python unpickler: every opcode keeps its exact meaning (framing included), and its
# dispatch table lets the opcodes that call be replaced by checked versions.
_PyUnpickler: Any = pickle._Unpickler


class _RestrictedUnpickler(_PyUnpickler):  # type: ignore[misc]
    dispatch: dict[int, Callable[[Any], None]] = dict(_PyUnpickler.dispatch)

    def __init__(self, file: IO[bytes], *, allow: frozenset[str], resolved: dict[int, _Global] | None = None) -> None:
        super().__init__(file, fix_imports=True, encoding="ASCII", errors="strict")
        self.allow = allow
        self.raw = file
        # id(object) -> its name; objects are kept alive here so ids stay unique during the load
        self.resolved: dict[int, _Global] = {} if resolved is None else resolved
        self.np: Any = None

    # -- policy ------------------------------------------------------------------------------
    def is_allowed(self, full: str) -> bool:
        return full in self.allow or full in _policy.allowlist()

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise _Refused("A global is named by values that are not strings.")
        mod, nm = _policy.normalize(module, name)
        full = f"{mod}.{nm}"
        if not (_NAME.fullmatch(mod) and _NAME.fullmatch(nm)):
            raise _Refused(f"The global {full!r} is not a plain dotted name.")
        if full not in _GUARDED:
            hit = _policy.critical_match(mod, nm)
            if hit is not None:
                raise _Refused(f"The pickle imports {full}, which gives code execution or system access "
                               f"(matches {hit!r}).")
            if full not in self.allow and full not in _policy.allowlist():
                raise _Refused(f"The pickle imports {full}, which is not on the allowlist. If you have audited "
                               "it, allow it explicitly (bastion model scan --allow-finding, with a reason).")
        obj = _SUBSTITUTES.get(full)
        if obj is None:
            obj = self._import(mod, nm, full)
        self.resolved[id(obj)] = _Global(full, obj)
        return obj

    @staticmethod
    def _import(mod: str, nm: str, full: str) -> Any:
        try:
            __import__(mod)
            obj: Any = sys.modules[mod]
            for part in nm.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise _Refused(f"The allowlisted global {full} cannot be imported here ({e}).") from None
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("The pickle asks its loader to resolve a persistent id; plain pickle files never do.")

    def require_data(self, name: str, args: Iterable[Any], kwargs: dict[str, Any]) -> None:
        seen: set[int] = set()
        for value in (*args, *kwargs.keys(), *kwargs.values()):
            bad = _is_data(value, self, seen)
            if bad is not None:
                raise _Refused(f"{name} was given {bad} as an argument; a reference that reaches a call site is a "
                               "call, and this position takes only data.")

    def check_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        _signature(name)(self, name, args, kwargs)

    def constructor_check(self, name: str, func: Any, args: tuple[Any, ...], how: str) -> None:
        """Calling a class with arguments runs its constructor: only the classes the libraries' own pickles
        call that way (``_signatures.CONSTRUCTIBLE``), or classes an operator allowed explicitly."""
        if (isinstance(func, type) and args and name not in self.allow
                and not _signatures.callable_with_arguments(name)):
            raise _Refused(f"{how} calls the class {name} with arguments, which runs its constructor; the libraries' "
                           "own pickles build it without running it (NEWOBJ or copyreg, then BUILD). Constructors "
                           "open files (pandas.ExcelWriter, Booster(model_file=...)) and run other library code.")

    def _callee(self, func: Any, how: str) -> str:
        g = self.resolved.get(id(func))
        if g is None:
            raise _Refused(f"{how} calls {_describe(func, self)}, which is not a global the pickle named; "
                           "model files never chain calls.")
        return g.name

    def _mutable(self, target: Any, how: str) -> None:
        if id(target) in self.resolved or isinstance(target, type) or type(target).__name__ == "module":
            raise _Refused(f"{how} would modify the imported {_describe(target, self)} itself.")

    # -- opcodes that call -------------------------------------------------------------------
    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        name = self._callee(func, "REDUCE")
        if not isinstance(args, tuple):
            raise _Refused("REDUCE needs a tuple of arguments.")
        self.constructor_check(name, func, args, "REDUCE")
        self.check_call(name, args, {})
        stack[-1] = self._run(name, func, args, {})
        if name == "builtins.getattr":
            owner = self.resolved[id(args[0])].name
            self.resolved[id(stack[-1])] = _Global(f"{owner}.{args[1]}", stack[-1])

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _new(self, cls: Any, args: Any, kwargs: Any, how: str) -> None:
        name = self._callee(cls, how)
        if not isinstance(cls, type):
            raise _Refused(f"{how} needs a class; {name} is not one.")
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise _Refused(f"{how} needs a tuple of arguments.")
        self.check_call(name, args, kwargs)
        self.append(self._run(name, cls.__new__, (cls, *args), kwargs))

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self._new(cls, args, {}, "NEWOBJ")

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._new(cls, args, kwargs, "NEWOBJ_EX")

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        name = self._callee(klass, "INST/OBJ")
        targs = tuple(args)
        if targs or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            self.constructor_check(name, klass, targs, "INST/OBJ")
            self.check_call(name, targs, {})
            value = self._run(name, klass, targs, {})
        else:
            value = self._run(name, klass.__new__, (klass,), {})
        self.append(value)

    def _run(self, name: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return func(*args, **kwargs)
        except _Refused:
            raise
        except Exception as e:
            raise _Refused(f"{name} failed while loading ({type(e).__name__}: {e}).") from e

    # -- opcodes that call methods of existing objects ---------------------------------------
    def load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        self._mutable(inst, "BUILD")
        inst_dict = getattr(inst, "__dict__", None)
        if isinstance(inst_dict, dict) and "__setstate__" in inst_dict:
            raise _Refused("BUILD would call a __setstate__ planted as an instance attribute.")
        self._state_check(inst, state)
        setstate = getattr(type(inst), "__setstate__", None)
        if setstate is not None:
            if _is_joblib_wrapper(inst):
                raise _Refused("A joblib array wrapper defines __setstate__; refusing to guess its layout.")
            native = _NATIVE_MODELS.get(_qualname(type(inst)))
            if native is not None:
                native(inst, state, before=True)
            self._run(f"{_qualname(type(inst))}.__setstate__", setstate, (inst, state), {})
            if native is not None:
                native(inst, state, before=False)
        else:
            slotstate = None
            if isinstance(state, tuple) and len(state) == 2:
                state, slotstate = state
            for part in (state, slotstate):
                if part and not isinstance(part, dict):
                    raise _Refused(f"BUILD state for {_describe(inst, self)} is not a dictionary.")
                if part:
                    bad = _planted(part)
                    if bad is not None:
                        raise _Refused(f"BUILD would set the attribute {bad!r} on {_describe(inst, self)}.")
            if state:
                if not isinstance(inst_dict, dict):
                    raise _Refused(f"BUILD state for {_describe(inst, self)} has nowhere to go.")
                for k, v in state.items():
                    inst_dict[sys.intern(k) if type(k) is str else k] = v
            if slotstate:
                for k, v in slotstate.items():
                    if not isinstance(k, str):
                        raise _Refused("BUILD slot names must be strings.")
                    setattr(inst, k, v)
        if _is_joblib_wrapper(inst):
            stack[-1] = self._joblib_array(stack[-1])

    dispatch[pickle.BUILD[0]] = load_build

    def _stored_classes(self, value: Any, how: str) -> None:
        """A class stored in object state is called later by the model's own code (FunctionTransformer.func with
        its kw_args, a partial's func, a scorer): the constructor rule applies to it as to a call now."""
        stack: list[Any] = [value]
        seen: set[int] = set()
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            if isinstance(v, tuple | list | set | frozenset):
                stack.extend(v)
            elif isinstance(v, dict):
                stack.extend(v.keys())
                stack.extend(v.values())
            elif isinstance(v, type) and id(v) in self.resolved:
                self.constructor_check(self.resolved[id(v)].name, v, (None,),
                                       f"{how} stores a class the model's code calls later; that")

    def stored_classes_in(self, obj: Any, *, limit: int = 200_000) -> None:
        """The loaded object graph, after every BUILD and later APPEND/SETITEM: a class the pickle imported that
        sits anywhere but a call position is a deferred call (a container mutated after its owner's BUILD)."""
        stack: list[Any] = [obj]
        seen: set[int] = set()
        while stack and len(seen) < limit:
            v = stack.pop()
            if id(v) in seen or isinstance(v, _SCALARS):
                continue
            seen.add(id(v))
            if isinstance(v, type):
                g = self.resolved.get(id(v))
                if g is not None:
                    self.constructor_check(g.name, v, (None,), "The loaded model holds a class its code may call; that")
                continue
            if isinstance(v, _CONTAINERS):
                stack.extend(v)
            elif isinstance(v, dict):
                stack.extend(v.keys())
                stack.extend(v.values())
            else:
                inst = getattr(v, "__dict__", None)
                if isinstance(inst, dict):
                    stack.extend(inst.values())

    def _state_check(self, inst: Any, state: Any) -> None:
        """State some classes act on: code they exec() (scipy's argument parsers), parameters that make the
        model touch the host at predict time (a vectorizer's ``input``). Checked before __setstate__ runs."""
        self._stored_classes(state, f"BUILD of {_describe(inst, self)}")
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        names = [_qualname(base) for base in type(inst).__mro__]
        for part in parts:
            if not isinstance(part, dict):
                continue
            for key, value in part.items():
                for name in names:
                    bad = _signatures.unsafe_parameter(name, key, value)
                    if bad is not None:
                        raise _Refused(f"BUILD would set {bad}.")

    def _container_op(self, target: Any, method: str, how: str) -> Callable[..., Any]:
        self._mutable(target, how)
        inst_dict = getattr(target, "__dict__", None)
        if isinstance(inst_dict, dict) and method in inst_dict:
            raise _Refused(f"{how} would call a {method!r} planted as an instance attribute.")
        if isinstance(target, list | dict | set):
            bound: Callable[..., Any] = getattr(target, method)
            return bound
        tname = _qualname(type(target))
        if id(type(target)) not in self.resolved and not self.is_allowed(tname):
            raise _Refused(f"{how} calls {method} on a {tname}, which is not an allowlisted class.")
        impl = getattr(type(target), method, None)
        if impl is None:
            raise _Refused(f"{how} needs {tname}.{method}, which does not exist.")
        return lambda *a: impl(target, *a)

    def load_append(self) -> None:
        value = self.stack.pop()
        target = self.stack[-1]
        if type(target) is list:
            target.append(value)
            return
        self._container_op(target, "append", "APPEND")(value)

    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is list:
            target.extend(items)
            return
        self._mutable(target, "APPENDS")
        try:
            extend = self._container_op(target, "extend", "APPENDS")
        except _Refused:
            extend = None
        if extend is not None:
            extend(items)
            return
        append = self._container_op(target, "append", "APPENDS")
        for item in items:
            append(item)

    dispatch[pickle.APPENDS[0]] = load_appends

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        target = self.stack[-1]
        if type(target) is dict:
            target[key] = value
            return
        self._container_op(target, "__setitem__", "SETITEM")(key, value)

    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if len(items) % 2:
            raise _Refused("SETITEMS has an odd number of items.")
        setter = (target.__setitem__ if type(target) is dict
                  else self._container_op(target, "__setitem__", "SETITEMS"))
        for i in range(0, len(items), 2):
            setter(items[i], items[i + 1])

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is set:
            target.update(items)
            return
        add = self._container_op(target, "add", "ADDITEMS")
        for item in items:
            add(item)

    dispatch[pickle.ADDITEMS[0]] = load_additems

    def _ext(self) -> None:
        raise _Refused("The pickle names a global through the copyreg extension registry; refused.")

    dispatch[pickle.EXT1[0]] = lambda self: self._ext()
    dispatch[pickle.EXT2[0]] = lambda self: self._ext()
    dispatch[pickle.EXT4[0]] = lambda self: self._ext()

    # -- joblib inline arrays ----------------------------------------------------------------
    def _joblib_array(self, wrapper: Any) -> Any:
        import numpy as np

        dtype = getattr(wrapper, "dtype", None)
        shape = getattr(wrapper, "shape", None)
        order = getattr(wrapper, "order", "C")
        subclass = getattr(wrapper, "subclass", np.ndarray)
        if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple) or order not in ("C", "F"):
            raise _Refused("A joblib array wrapper has an invalid dtype, shape or order.")
        if subclass not in (np.ndarray, np.memmap):
            raise _Refused(f"A joblib array asks for the array subclass {_describe(subclass, self)}.")
        if dtype.hasobject:
            # joblib reads an object array as a nested pickle on the raw file: same rules, same allowlist
            inner = _RestrictedUnpickler(self.raw, allow=self.allow, resolved=self.resolved)
            array = inner.load()
            if not isinstance(array, np.ndarray):
                raise _Refused("A joblib object array did not unpickle to an array.")
        else:
            count = 1
            for d in shape:
                if not isinstance(d, int) or isinstance(d, bool) or d < 0:
                    raise _Refused(f"A joblib array has an invalid shape {shape!r}.")
                count *= d
            if getattr(wrapper, "numpy_array_alignment_bytes", None) is not None:
                pad = self.raw.read(1)
                if len(pad) != 1:
                    raise _Refused("A joblib array is truncated (no alignment byte).")
                if pad[0] and len(self.raw.read(pad[0])) != pad[0]:
                    raise _Refused("A joblib array is truncated inside its alignment padding.")
            need = count * dtype.itemsize
            buf = bytearray()
            while len(buf) < need:  # grows with the data actually present, never with the stated shape
                chunk = self.raw.read(min(_CHUNK, need - len(buf)))
                if not chunk:
                    raise _Refused(f"A joblib array is truncated: {need} bytes stated, {len(buf)} present.")
                buf += chunk
            flat = np.frombuffer(bytes(buf), dtype=dtype, count=count).copy()
            array = flat.reshape(shape[::-1]).transpose() if order == "F" else flat.reshape(shape)
        if array.dtype.byteorder not in ("=", "|") and array.dtype.byteorder != _NATIVE:
            array = array.byteswap().view(array.dtype.newbyteorder("="))
        return array


_NATIVE = "<" if sys.byteorder == "little" else ">"


def _lightgbm_state(inst: Any, state: Any, *, before: bool) -> None:
    """LightGBM parses the model text in ``__setstate__``; crafted counts there crash the process (see
    ``bastion.flavors.lightgbm``), so the text is checked first."""
    if not before:
        return
    from bastion.errors import DataError
    from bastion.flavors.lightgbm import check_model_text

    text = state.get("_handle", state.get("handle")) if isinstance(state, dict) else None
    if text is None:
        return
    if not isinstance(text, str):
        raise _Refused("A LightGBM booster's state holds a model that is not text.")
    try:
        check_model_text(text, "The LightGBM booster in the pickle")
    except DataError as e:
        raise _Refused(str(e)) from None


def _xgboost_state(inst: Any, state: Any, *, before: bool) -> None:
    """XGBoost follows tree indices unchecked at predict time: the loaded booster's trees are checked."""
    if before:
        return
    import json

    from bastion.errors import DataError
    from bastion.flavors.xgboost import check_trees

    if getattr(inst, "handle", None) is None:
        return
    try:
        check_trees(json.loads(bytes(inst.save_raw("json"))), "The XGBoost booster in the pickle")
    except DataError as e:
        raise _Refused(str(e)) from None


# Native model objects whose __setstate__ hands bytes to a C++ parser that trusts them.
_NATIVE_MODELS: dict[str, Callable[..., None]] = {
    "lightgbm.basic.Booster": _lightgbm_state,
    "xgboost.core.Booster": _xgboost_state,
}


def _is_joblib_wrapper(inst: Any) -> bool:
    mod = sys.modules.get("joblib.numpy_pickle")
    cls = getattr(mod, "NumpyArrayWrapper", None) if mod is not None else None
    return cls is not None and isinstance(inst, cls)


# -- decompression (joblib's compressors, by magic, as joblib detects them) ------------------------

def _open_decompressed(fh: IO[bytes]) -> IO[bytes]:
    """The decompressed stream when ``fh`` is a joblib-compressed file, else ``fh`` itself."""
    try:
        from joblib import numpy_pickle_utils as npu
    except ImportError:  # pragma: no cover - joblib ships with scikit-learn
        return fh
    try:
        compressor = npu._detect_compressor(fh)
    except Exception as e:  # joblib raises ValueError for lz4 without lz4 installed
        raise _Refused(f"The file's compression cannot be read here ({e}).") from None
    if compressor == "compat":
        raise _Refused("The file is a joblib < 0.10 pickle (arrays in companion files); re-save it.")
    if compressor in npu._COMPRESSORS:
        try:
            inst = npu._COMPRESSORS[compressor].decompressor_file(fh)
        except Exception as e:
            raise _Refused(f"The {compressor} stream cannot be opened ({e}).") from None
        buffered: IO[bytes] = npu._buffered_read_file(inst)
        return buffered
    return fh


def _load(fh: IO[bytes], allow: Iterable[str], what: str) -> object:
    allowed = _parse_allow(allow)
    try:
        stream = _open_decompressed(fh)
        unpickler = _RestrictedUnpickler(stream, allow=allowed)
        obj = unpickler.load()
        if stream.read(1):
            raise _Refused("Data follows the pickle's STOP opcode; a loader that reads again would run it.")
        unpickler.stored_classes_in(obj)
        bad = _signatures.unsafe_state(obj)
        if bad is not None:
            raise _Refused(f"The loaded model carries {bad}: it would act on the host when it predicts.")
        return obj
    except _Refused as e:
        raise UnsafeArtifactError(f"{what} was refused by the restricted loader: {e} {_REMEDY}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, OverflowError, MemoryError, RecursionError, OSError) as e:
        raise UnsafeArtifactError(f"{what} is not a valid pickle or joblib file ({type(e).__name__}: {e}). "
                                  "Nothing was loaded.") from None


def _critical_hit(entry: str) -> str | None:
    # the longest importable module prefix is unknown here; check every split against the critical list
    parts = entry.split(".")
    for i in range(1, len(parts)):
        hit = _policy.critical_match(".".join(parts[:i]), ".".join(parts[i:]))
        if hit is not None:
            return hit
    return None


def allowable(entry: str) -> bool:
    """Whether ``entry`` may ever be allowed: a dotted ``module.name`` that is not on the critical list."""
    return (isinstance(entry, str) and _NAME.fullmatch(entry) is not None and "." in entry
            and _critical_hit(entry) is None and entry not in _GUARDED)


def _parse_allow(allow: Iterable[str]) -> frozenset[str]:
    if isinstance(allow, str):
        allow = [allow]
    out = set()
    for entry in allow:
        if not isinstance(entry, str) or not _NAME.fullmatch(entry) or "." not in entry:
            raise UnsafeArtifactError(f"An allowed global must be a dotted 'module.name'; got {entry!r}.")
        hit = _critical_hit(entry)
        if hit is not None or entry in _GUARDED:
            raise UnsafeArtifactError(f"{entry} gives code execution or system access (matches {hit or entry!r}); "
                                      "it cannot be allowed.")
        out.add(entry)
    return frozenset(out)


def restricted_loads(data: bytes, *, allow: Iterable[str] = ()) -> object:
    """Load a pickle or joblib payload from bytes under the scanner's allowlist.

    Parameters
    ----------
    data : bytes
        A plain pickle, or a joblib file's bytes (any joblib compressor).
    allow : iterable of str
        Extra ``module.qualname`` globals an operator has audited and approved. Names on the critical
        list (code execution, system access) can never be allowed.

    Raises
    ------
    bastion.errors.UnsafeArtifactError
        Anything not allowed, or a malformed file. Nothing is returned in that case.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UnsafeArtifactError(f"restricted_loads needs bytes; got {type(data).__name__}.")
    return _load(io.BytesIO(bytes(data)), allow, "The pickle")


def restricted_load(path: str | Path, *, allow: Iterable[str] = ()) -> object:
    """Load a pickle or joblib file under the scanner's allowlist (see `restricted_loads`)."""
    p = Path(os.fspath(path))
    try:
        fh = open(p, "rb")  # closed below, after a possible decompressor is done
    except OSError as e:
        raise UnsafeArtifactError(f"{p} cannot be opened ({e.strerror}). Nothing was loaded.") from None
    with fh:
        return _load(fh, allow, str(p))
