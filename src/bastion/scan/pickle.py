"""Pickle analysis by reading opcodes, never by loading: which globals are reachable and called.

A small stack machine follows protocols 0-5 far enough to know which callable each REDUCE,
NEWOBJ, INST and OBJ applies to; each global is then checked against the allowlist.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import io
import struct
import sys
from dataclasses import dataclass, field

from bastion.scan import _policy, _signatures
from bastion.scan import joblib as joblib_scan
from bastion.scan.interface import FormatScanner, LimitExceeded, Severity

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO, Any

    from bastion.scan.interface import ScanContext

__all__ = ["PickleScanner", "analyze_pickle_stream", "looks_like_pickle"]

_KEEP_STR = 1 << 16
_KEEP_BYTES = 1 << 10
_KEEP_ITEMS = 1 << 16
_CHUNK = 1 << 20
_SHADOW_BYTES = 1 << 16

_REMEDIATE_GLOBAL = (
    "Do not load this file with pickle, joblib or torch.load. Re-export the model in a format that "
    "holds no code (safetensors, ONNX, skops) from a trusted environment."
)
_REMEDIATE_UNKNOWN = (
    "Review the named callable; if it is genuinely needed to load the model, re-save the model with a "
    "supported library or export it to a code-free format. The scanner never widens its allowlist from "
    "the artifact itself."
)
_REMEDIATE_MALFORMED = (
    "A loader runs the opcodes before it reaches the damage, so treat the file as hostile; obtain a "
    "fresh copy from the producer and scan it again."
)



@functools.cache
def _opnames() -> dict[int, str]:
    """Opcode byte -> name (pickletools is imported only for messages and the first-byte check)."""
    import pickletools

    return {ord(op.code): op.name for op in pickletools.opcodes}


def _opname(op: int) -> str:
    return _opnames().get(op, "?")


#: Every opcode byte of protocols 0-5 (``pickletools.opcodes``; a test keeps the two equal).
OPCODE_BYTES = frozenset(
    b"().012BCFGIJKLMNPQRSTUVX]abcdeghijlopqrstu}\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c"
    b"\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"
)


_PERSID_OK = "torch"
# Callables whose first argument is instantiated (its __new__/__setstate__ run at load time).
_CONSTRUCTORS = frozenset(
    {
        ("copyreg", "_reconstructor"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "__newobj__"),
        ("copyreg", "__newobj_ex__"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch._utils", "_rebuild_from_type_v2"),
    }
)


class Malformed(Exception):
    """The opcode stream cannot be parsed the way the unpickler would.

    ``{op}`` in the message stands for the opcode's name, looked up only when the message is read:
    most Malformed are raised while probing content that turns out not to be a pickle at all.
    """

    def __init__(self, message: str, offset: int, op: int | None = None) -> None:
        super().__init__(message)
        self._message = message
        self.offset = offset
        self.op = op

    @property
    def message(self) -> str:
        if self.op is None:
            return self._message
        return self._message.replace("{op}", _opname(self.op))


class _Mark:
    __slots__ = ()


_MARK = _Mark()


class _Global:
    __slots__ = ("module", "name", "offset")

    def __init__(self, module: str, name: str, offset: int) -> None:
        self.module = module
        self.name = name
        self.offset = offset

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


class _Obj:
    """Result of a call (REDUCE, NEWOBJ, INST, OBJ); ``state`` is what BUILD gave it; ``planted`` the
    method names BUILD wrote into its instance dict (APPENDS/SETITEMS/BUILD would call them)."""

    __slots__ = ("args", "func", "planted", "state")

    def __init__(self, func: Any, args: Any) -> None:
        self.func = func
        self.args = args
        self.state: Any = None
        self.planted: frozenset[str] | None = None


#: How a pickle header (PROTO 2-5) starts in base64 and in hex: text that may carry a nested pickle.
_NESTED_TEXT = frozenset({b"gAI", b"gAJ", b"gAK", b"gAL", b"gAM", b"gAN", b"gAO", b"gAP", b"gAQ", b"gAR", b"gAS",
                          b"gAT", b"gAU", b"gAV", b"gAW", b"gAX", b"800"})

_SHARED = (list, tuple, dict)
_SHARED_CHECK = 8
_EXPANSION_LIMIT = 10_000_000

#: Instance attributes the unpickler looks up and calls (APPEND(S), SETITEM(S), ADDITEMS, BUILD).
_PLANTABLE = frozenset({"append", "extend", "add", "__setstate__"})


def _reachable(value: Any, limit: int = 4096) -> list[Any]:
    """Values inside ``value`` (tuples, lists, dict keys and values), breadth first, bounded."""
    out = [value]
    i = 0
    while i < len(out) and len(out) < limit:
        v = out[i]
        i += 1
        if isinstance(v, tuple | list):
            out.extend(v[: limit - len(out)])
        elif isinstance(v, dict):
            for k, item in v.items():
                out.append(k)
                out.append(item)
                if len(out) >= limit:
                    break
    return out


def _full(value: Any) -> str | None:
    return ".".join(_policy.normalize(value.module, value.name)) if isinstance(value, _Global) else None


def _made_by(value: Any, names: frozenset[str] | tuple[str, ...]) -> bool:
    return isinstance(value, _Obj) and _full(value.func) in names


def _no_globals(value: Any) -> bool:
    return not any(isinstance(v, _Global | _Obj | _Pers) for v in _reachable(value))


_NP_ARRAYS = ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct", "numpy.ndarray")
_SIZE = ("torch.Size",)
_ORDERED_DICTS = ("collections.OrderedDict",)
_DEVICES = ("torch.device",)


def _is_shape(value: Any) -> bool:
    if _made_by(value, _SIZE):
        inner = value.args[0] if isinstance(value.args, tuple) and len(value.args) == 1 else None
        return isinstance(inner, tuple | list) and all(type(d) is int for d in inner)
    return isinstance(value, tuple | list) and all(type(d) is int for d in value)


def _is_state(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, tuple):
        return len(value) <= 2 and all(_is_state(v) for v in value)
    return isinstance(value, dict) and all(
        isinstance(k, str) and not (k.startswith("__") and k.endswith("__")) for k in value) and _no_globals(value)


def _torch_kind(kind: str, value: Any, in_place: set[int]) -> bool:
    """Whether ``value`` (as the scan sees it) is of ``kind`` (see ``_signatures.TORCH_SIGNATURES``)."""
    if kind == "storage":
        return isinstance(value, _Pers)
    if kind == "tensor":
        return _made_by(value, _signatures.TORCH_TENSOR_MAKERS)
    if kind in ("int", "bool", "str", "bytes"):
        want = {"int": int, "bool": bool, "str": str, "bytes": bytes}[kind]
        return type(value) is want or (kind == "bytes" and isinstance(value, _Opaque) and value.kind == "bytes")
    if kind == "shape":
        return _is_shape(value)
    if kind == "hooks":
        return value is None or (isinstance(value, dict) and _no_globals(value)) or (
            _made_by(value, _ORDERED_DICTS) and value.args in ((), ([],)))
    if kind == "dtype" or kind == "tclass":
        name = _full(value)
        ok = name in _signatures.TORCH_DTYPES if kind == "dtype" else (
            name is not None and name.startswith("torch.") and _policy.is_allowed(value.module, value.name))
        if ok:
            in_place.add(id(value))
        return ok
    if kind == "layout":
        if _full(value) in _signatures.TORCH_LAYOUTS:
            in_place.add(id(value))
            return True
        return _made_by(value, ("torch.serialization._get_layout",))
    if kind == "qparams":
        if not (isinstance(value, tuple) and value and _full(value[0]) in _signatures.QSCHEMES):
            return False
        in_place.add(id(value[0]))
        return all(_no_globals(v) or _made_by(v, _signatures.TORCH_TENSOR_MAKERS) for v in value[1:])
    if kind == "tensors":
        return isinstance(value, tuple | list) and all(
            _made_by(v, _signatures.TORCH_TENSOR_MAKERS) or _is_shape(v) or v is None or type(v) in (bool, int)
            for v in value)
    if kind == "ndarray":
        return _made_by(value, _NP_ARRAYS)
    if kind == "device":
        return isinstance(value, str) or _made_by(value, _DEVICES)
    if kind == "state":
        return _is_state(value)
    return _no_globals(value)  # "data"


def _constructed_wrapper(obj: _Obj) -> bool:
    """joblib decides by isinstance: a wrapper built by NEWOBJ, ``copyreg.__newobj__`` or
    ``copyreg._reconstructor`` is as much a wrapper as one built by calling the class."""
    func = obj.func
    if not isinstance(func, _Global):
        return False
    key = (func.module, func.name)
    if key in joblib_scan.WRAPPERS:
        return True
    if _policy.normalize(*key) in _CONSTRUCTORS and isinstance(obj.args, tuple) and obj.args:
        first = obj.args[0]
        return isinstance(first, _Global) and (first.module, first.name) in joblib_scan.WRAPPERS
    return False


def _class_of(obj: _Obj) -> str | None:
    """The class an object was built from (NEWOBJ/REDUCE of the class, or copyreg's helpers), if named."""
    func = obj.func
    if not isinstance(func, _Global):
        return None
    if _policy.normalize(func.module, func.name) in _CONSTRUCTORS:
        first = obj.args[0] if isinstance(obj.args, tuple) and obj.args else None
        return _full(first)
    return _full(func)


def _py2str(value: Any) -> Any:
    """Protocol-2 ``str`` opcodes: Python 3's unpickler decodes them to ``str`` (ASCII by default,
    latin-1 when asked), so names assembled from them resolve like text."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


class _Opaque:
    """A value the analysis does not keep (large strings, bytes, sets, buffers)."""

    __slots__ = ("kind", "size")

    def __init__(self, kind: str, size: int = 0) -> None:
        self.kind = kind
        self.size = size


class _Pers:
    __slots__ = ("pid",)

    def __init__(self, pid: Any) -> None:
        self.pid = pid


@dataclass
class _GlobalUse:
    module: str
    name: str
    offset: int
    how: str  # "GLOBAL", "STACK_GLOBAL" or "INST"
    called_at: int | None = None
    calls: int = 0
    method_lookups: int = 0  # calls that were getattr(<allowed class>, "<allowed method>")
    pushes: int = 0  # times the global was put on the stack (the opcode, memo gets, DUP): exemptions are per use


@dataclass
class PickleResult:
    """What one run of the machine saw (for callers such as numpy and torch scanners)."""

    uses: dict[tuple[str, str], _GlobalUse] = field(default_factory=dict)
    opcodes: int = 0
    end: int = 0
    protocol: int = 0
    first_value: Any = None
    complete: bool = False
    dangerous_seen: bool = False


def _describe(value: Any) -> str:
    if isinstance(value, _Global):
        return f"{value.module}.{value.name}"
    if isinstance(value, _Obj):
        return f"result of calling {_describe(value.func)}"
    if isinstance(value, _Pers):
        return "persistent object"
    if isinstance(value, _Opaque):
        return value.kind
    return type(value).__name__


class _Machine:
    """Simulates the unpickler's stack and memo without constructing anything."""

    def __init__(self, stream: IO[bytes], ctx: ScanContext, *, base: int, joblib_arrays: bool,
                 budget: list[int], result: PickleResult) -> None:
        self.read = stream.read
        self.readline = stream.readline
        self.stream = stream
        self.ctx = ctx
        self.pos = base
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.joblib_arrays = joblib_arrays
        self.budget = budget
        self.res = result
        self.allow_persid = _PERSID_OK in ctx.flags
        self.op_offset = base
        self.frame_end: int | None = None
        self.depth = 0
        self.shared = 0  # containers pushed again by DUP or a memo get (the shape of "billion laughs")

    # -- low-level reads -------------------------------------------------------------------
    def _need(self, n: int) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise Malformed(
                f"The pickle is truncated: {{op}} needs {n} bytes, {len(data)} remain.",
                self.op_offset,
                self._op,
            )
        self.pos += n
        return data

    def _skip(self, n: int, what: str) -> None:
        remaining = n
        while remaining > 0:
            chunk = self.read(min(remaining, _CHUNK))
            if not chunk:
                raise Malformed(f"The pickle is truncated inside {what} ({remaining} bytes missing).",
                                self.op_offset)
            remaining -= len(chunk)
            self.pos += len(chunk)

    def _line(self) -> bytes:
        line = self.readline(1 << 20)
        self.pos += len(line)
        if not line.endswith(b"\n"):
            raise Malformed("The pickle is truncated inside a text line (no newline).", self.op_offset)
        return line[:-1]

    def _blob(self, n: int, kind: str, keep: int) -> Any:
        if n < 0 or n > sys.maxsize:
            raise Malformed(f"{kind} has an invalid length {n}.", self.op_offset)
        if n <= keep:
            data = self._need(n)
            if data[:1] == b"\x80" and n > 3 and kind == "bytes":
                self._nested(data, "bytes")
            return data
        self._skip(n, kind)
        return _Opaque(kind, n)

    def _nested(self, data: bytes, how: str) -> None:
        """A pickle carried as data (raw bytes, base64 or hex text): what it would import if a loader
        or model code unpickled it. Reported only when it names globals off the allowlist."""
        if how == "text":
            import base64
            import binascii

            try:
                text = data.decode("ascii")
                raw = bytes.fromhex(text) if text[:2] == "80" else base64.b64decode(text, validate=True)
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return
        else:
            raw = data
        if len(raw) < 4 or raw[0] != 0x80 or not 2 <= raw[1] <= 5 or self.depth >= 3:
            return
        probe = dataclasses.replace(self.ctx, findings=[], flags=frozenset())
        result = PickleResult()
        machine = _Machine(io.BufferedReader(io.BytesIO(raw)), probe, base=self.op_offset, joblib_arrays=False,
                           budget=[0], result=result)
        machine.depth = self.depth + 1
        try:
            machine.run()
        except (Malformed, LimitExceeded):
            pass
        bad = [f"{u.module}.{u.name}" for u in result.uses.values()
               if _policy.critical_match(u.module, u.name) is not None or not _policy.is_allowed(u.module, u.name)]
        deeper = [f for f in probe.findings if f.rule_id == "pickle.nested-pickle"]
        if not bad and not deeper:
            return
        self.ctx.findings.extend(deeper)
        self.ctx.add(
            "pickle.nested-pickle",
            Severity.HIGH,
            f"nested pickle ({'base64/hex text' if how == 'text' else how})",
            f"The pickle carries another pickle as data that imports "
            f"{', '.join(sorted(bad)[:5]) or 'a further nested pickle'}; any code that "
            "unpickles it (a nested loads, a model's own loader) runs it.",
            _REMEDIATE_GLOBAL,
            offset=self.op_offset,
        )
        self.res.dangerous_seen = True
        emit_global_findings(self.ctx, result)

    # -- stack helpers -----------------------------------------------------------------------
    def _pop(self) -> Any:
        if not self.stack:
            raise Malformed("Stack underflow at {op}.", self.op_offset, self._op)
        return self.stack.pop()

    def _top(self) -> Any:
        if not self.stack:
            raise Malformed("Stack underflow at {op}.", self.op_offset, self._op)
        return self.stack[-1]

    def _pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise Malformed("{op} found no MARK on the stack.", self.op_offset, self._op)
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    # -- globals and calls -------------------------------------------------------------------
    def _global(self, module: Any, name: Any, how: str) -> _Global:
        if not isinstance(module, str) or not isinstance(name, str):
            self.ctx.add(
                "pickle.unresolved-global",
                Severity.HIGH,
                f"{how} ({_describe(module)}, {_describe(name)})",
                f"{how} takes its module and name from values that are not constant strings "
                f"({_describe(module)}, {_describe(name)}); the scanner cannot tell what gets imported.",
                _REMEDIATE_GLOBAL,
                offset=self.op_offset,
            )
            self.res.dangerous_seen = True
            return _Global("<unresolved>", "<unresolved>", self.op_offset)
        key = (module, name)
        use = self.res.uses.get(key)
        if use is None:
            use = self.res.uses[key] = _GlobalUse(module, name, self.op_offset, how)
        use.pushes += 1
        if _is_identifier_path(module) and _is_identifier_path(name):
            self.res.dangerous_seen = True
        return _Global(module, name, self.op_offset)

    def _call(self, func: Any, args: Any, how: str) -> _Obj | _Global:
        if (
            isinstance(func, _Pers)
            and self.allow_persid
            and isinstance(func.pid, tuple)
            and len(func.pid) >= 2
            and func.pid[0] == "module"
            and isinstance(func.pid[1], _Global)
        ):
            # Legacy torch.save stores module classes as persistent ids ('module', cls, file, source);
            # torch's persistent_load returns cls, so the call is a call of that global.
            func = func.pid[1]
        if isinstance(func, _Global):
            self.res.dangerous_seen = True
            use = self.res.uses.get((func.module, func.name))
            if use is not None:
                use.calls += 1
                if use.called_at is None:
                    use.called_at = self.op_offset
            method = self._method_lookup(func, args)
            if method is not None:
                if use is not None:
                    use.method_lookups += 1
                return method
            self._check_arguments(func, args, how)
            self._constructor_check(func, args, how)
            constructor = (func.module, func.name) in _CONSTRUCTORS or func.name == "newObj" or \
                func.name.startswith("__pyx_unpickle")
            if constructor and isinstance(args, tuple) and args:
                first = args[0]
                if isinstance(first, _Global):
                    inner = self.res.uses.get((first.module, first.name))
                    if inner is not None and inner.called_at is None:
                        inner.called_at = self.op_offset
        elif not (isinstance(func, _Global) and func.module == "<unresolved>"):
            self.ctx.add(
                "pickle.computed-call",
                Severity.HIGH,
                f"{how} on {_describe(func)}",
                f"{how} calls a value that is not a named global ({_describe(func)}); the pickle chains "
                "calls, which ordinary model files never do.",
                _REMEDIATE_GLOBAL,
                offset=self.op_offset,
            )
        return _Obj(func, args)

    def _check_arguments(self, func: _Global, args: Any, how: str) -> None:
        """Argument signatures: a global (or a callable built at load time) reaching an argument is a call.

        Positions that legitimately take a class (``copyreg._reconstructor``'s first argument, numpy's
        and pandas' reconstruct helpers, ...) are listed in ``_signatures``; anywhere else a global is a
        call gadget: allowlisted callables that call or build their arguments would run it.
        """
        full = ".".join(_policy.normalize(func.module, func.name))
        allowed_callee = _policy.is_allowed(func.module, func.name)
        if not isinstance(args, tuple):
            return
        if full == "builtins.getattr":
            return  # per-use method lookups are judged by _method_lookup; anything else is critical
        permitted = _signatures.class_positions(full)
        in_place: set[int] = set()
        torch_sig = _signatures.TORCH_SIGNATURES.get(full)
        if torch_sig is not None and allowed_callee:
            in_place = self._torch_signature(full, torch_sig, args, how)
        for index, arg in enumerate(args):
            for value in _reachable(arg):
                if isinstance(value, _Global):
                    inner = ".".join(_policy.normalize(value.module, value.name))
                    top = value is arg
                    if id(value) in in_place or inner in _signatures.CONSTANTS or (
                            top and index in permitted and _signatures.fits(full, index, inner)):
                        continue
                    use = self.res.uses.get((value.module, value.name))
                    if use is not None and use.called_at is None:
                        use.called_at = self.op_offset  # a reference that reaches a call site is a call
                    if allowed_callee and _policy.is_allowed(value.module, value.name):
                        self._gadget(full, inner, how)
                elif isinstance(value, _Obj) and _signatures.makes_callable(value.func):
                    self._gadget(full, f"a callable built at load time ({_describe(value)})", how)
        if allowed_callee:
            self._resource_check(full, args)
        if full in _signatures.TORCH_REBUILD_FROM_TYPE and len(args) >= 3 and isinstance(args[0], _Global) \
                and isinstance(args[2], tuple):
            self._check_arguments(args[0], args[2], how)  # _rebuild_from_type_v2 calls args[0](*args[2])
            if len(args) == 4 and not _is_state(args[3]):  # then writes the state onto the tensor
                self._signature_mismatch(full, f"{_describe(args[3])} at position 3, which takes state", how)

    def _constructor_check(self, func: _Global, args: Any, how: str) -> None:
        """A class called with arguments runs its constructor: only the classes whose own pickles do that
        (``_signatures.CONSTRUCTIBLE``) may be; so may functions. ``functools.partial`` defers the call."""
        full = ".".join(_policy.normalize(func.module, func.name))
        if not _policy.is_allowed(func.module, func.name) or not isinstance(args, tuple):
            return
        target: str | None = None
        if how in ("REDUCE", "INST", "OBJ") and args and not _signatures.callable_with_arguments(full):
            target = full
        elif full == "functools.partial" and args and isinstance(args[0], _Global):
            inner = ".".join(_policy.normalize(args[0].module, args[0].name))
            if _policy.is_allowed(args[0].module, args[0].name) and not _signatures.callable_with_arguments(inner):
                target = inner
        if target is None:
            return
        self.ctx.add(
            "pickle.constructor-call",
            Severity.HIGH,
            f"{target}(...)",
            f"{how} calls the class {target} with arguments{' (through functools.partial)' if target != full else ''}, "
            "which runs its constructor. The libraries' own pickles build such objects without running it "
            "(NEWOBJ or copyreg, then BUILD); constructors open files (pandas.ExcelWriter, Booster(model_file=...)) "
            "and run other library code on the arguments.",
            _REMEDIATE_GLOBAL,
            offset=self.op_offset,
        )
        self.res.dangerous_seen = True

    def _torch_signature(self, full: str, sig: tuple[tuple[str, ...], int], args: tuple[Any, ...],
                         how: str) -> set[int]:
        """Judge a call of a torch rebuild helper position by position; returns the ids of the globals that
        sit where the helper takes one (a dtype, a qscheme, a layout, a tensor class)."""
        kinds, required = sig
        if not required <= len(args) <= len(kinds):
            self._signature_mismatch(full, f"{len(args)} arguments (it takes {required} to {len(kinds)})", how)
            return set()
        in_place: set[int] = set()
        for index, (kind, arg) in enumerate(zip(kinds, args, strict=False)):
            ok = _torch_kind(kind, arg, in_place)
            if not ok:
                self._signature_mismatch(full, f"{_describe(arg)} at position {index}, which takes {kind}", how)
        return in_place

    def _signature_mismatch(self, callee: str, what: str, how: str) -> None:
        self.ctx.add(
            "pickle.argument-signature",
            Severity.HIGH,
            f"{callee}: {what}",
            f"{how} calls {callee} with {what}. torch's own files never do; a value of another kind there "
            "reaches code the helper runs on it (attribute reads, calls, state written onto the tensor).",
            _REMEDIATE_GLOBAL,
            offset=self.op_offset,
        )
        self.res.dangerous_seen = True

    def _gadget(self, callee: str, what: str, how: str) -> None:
        self.ctx.add(
            "pickle.call-gadget",
            Severity.HIGH,
            f"{callee}({what})",
            f"{how} passes {what} to {callee}, which calls or builds what it is given; allowlisted callables "
            "take only data in that position, so this chains a call the allowlist never approved.",
            _REMEDIATE_GLOBAL,
            offset=self.op_offset,
        )
        self.res.dangerous_seen = True

    def _resource_check(self, full: str, args: tuple[Any, ...]) -> None:
        problem = _signatures.oversized(full, args)
        if problem is not None:
            self.ctx.add(
                "limit.allocation",
                Severity.HIGH,
                full,
                f"The pickle calls {full} with {problem}; loading would exhaust memory or CPU.",
                _REMEDIATE_MALFORMED,
                offset=self.op_offset,
            )

    def _method_lookup(self, func: _Global, args: Any) -> _Global | None:
        """``getattr(<allowed class>, "<name>")`` where ``class.name`` is itself allowed.

        Pickle writes classmethods and static methods this way (zoneinfo.ZoneInfo._unpickle); the
        result is treated as a reference to that allowed global instead of a getattr gadget.
        """
        if _policy.normalize(func.module, func.name) != ("builtins", "getattr"):
            return None
        if not (isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], _Global)):
            return None
        owner, attr = args
        if not isinstance(attr, str) or not attr.isidentifier() or attr.startswith("__"):
            return None
        qualname = f"{owner.name}.{attr}"
        if not (_policy.is_allowed(owner.module, owner.name) and _policy.is_allowed(owner.module, qualname)):
            return None
        return self._global(owner.module, qualname, "getattr")

    def _frame_done(self, pos: int) -> None:
        if pos > self.frame_end:  # type: ignore[operator]
            self._frame_anomaly("An opcode straddles the end of its FRAME")
        self.frame_end = None

    def _frame_anomaly(self, what: str) -> None:
        # CPython's C unpickler reads straight through frame boundaries; the pure-Python one (which
        # joblib uses) stops with an error: the two loaders run different opcodes
        self.ctx.add(
            "pickle.frame-mismatch",
            Severity.HIGH,
            "FRAME boundary",
            f"{what}. pickle.load and joblib.load disagree on where such a pickle stops, a way to show "
            "scanners and loaders different code.",
            _REMEDIATE_MALFORMED,
            offset=self.op_offset,
        )
        self.frame_end = None

    def _expansion(self, root: Any) -> None:
        """The size of the object graph read as a tree: what a traversal (repr, JSON export, equality,
        a naive copy) touches. Shared containers make it exponential in the file size."""
        sizes: dict[int, int] = {}
        limit = _EXPANSION_LIMIT
        on_path: set[int] = set()

        def size(v: Any, depth: int) -> int:
            if type(v) not in _SHARED:
                return 1
            key = id(v)
            hit = sizes.get(key)
            if hit is not None:
                return hit
            if key in on_path or depth > 200:
                return limit  # a cycle or absurd nesting: a traversal never ends
            on_path.add(key)
            total = 1
            items = v.values() if isinstance(v, dict) else v
            for item in items:
                total += size(item, depth + 1)
                if total >= limit:
                    break
            on_path.discard(key)
            sizes[key] = total
            return total

        n = size(root, 0)
        if n >= limit:
            self.ctx.add(
                "limit.expansion",
                Severity.HIGH,
                "shared containers",
                f"The pickle reuses containers (DUP/memo) so that its object graph, read as a tree, holds more "
                f"than {limit:,} items from {self.pos:,} bytes: printing, exporting or comparing it exhausts "
                "memory or CPU (a 'billion laughs').",
                _REMEDIATE_MALFORMED,
                offset=self.op_offset,
            )

    def _repush(self, value: _Global) -> None:
        use = self.res.uses.get((value.module, value.name))
        if use is not None:
            use.pushes += 1

    def _mutate_check(self, target: Any, how: str) -> None:
        if isinstance(target, _Global):
            self.ctx.add(
                "pickle.mutate-global",
                Severity.HIGH,
                f"{how} on {_describe(target)}",
                f"{how} changes the imported object {_describe(target)} itself (monkey-patching a module "
                "or class at load time).",
                _REMEDIATE_GLOBAL,
                offset=self.op_offset,
            )

    # -- joblib inline arrays ----------------------------------------------------------------
    def _joblib_array(self, obj: _Obj, state: Any) -> None:
        if self.frame_end is not None:
            if self.pos < self.frame_end:
                # joblib reads array bytes from the raw file, after the buffered frame, while the
                # unpickler keeps reading opcodes from inside the frame
                self._frame_anomaly("A joblib array starts inside a FRAME")
            self.frame_end = None
        if not isinstance(state, dict):
            raise Malformed("A joblib NumpyArrayWrapper has no state dictionary.", self.op_offset)
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise Malformed(f"A joblib array has an invalid shape {shape!r}.", self.op_offset)
        info = joblib_scan.dtype_itemsize(state.get("dtype"))
        if info is None:
            raise Malformed("A joblib array has a dtype the scanner cannot size.", self.op_offset)
        itemsize, has_object = info
        if has_object:
            # joblib writes object arrays as a separate, plain pickle right here.
            sub = _Machine(self.stream, self.ctx, base=self.pos, joblib_arrays=False,
                           budget=self.budget, result=self.res)
            sub.run()
            self.pos = sub.pos
            return
        count = 1
        for d in shape:
            count *= d
        region = count * itemsize
        start = self.pos
        head = b""
        if state.get("numpy_array_alignment_bytes") is not None:
            head = self._need(1)
            region += 1 + head[0]
        # joblib.load skips these bytes as array data; pickle.load would run them as opcodes. Parse
        # their start as a pickle too, so a payload hidden for plain pickle.load is not missed.
        head += self._need(min(region, _SHADOW_BYTES) - len(head))
        self._shadow(head, start)
        self._skip(region - len(head), "joblib array data")

    def _shadow(self, data: bytes, start: int) -> None:
        probe = dataclasses.replace(self.ctx, findings=[], flags=frozenset())
        result = PickleResult()
        machine = _Machine(io.BufferedReader(io.BytesIO(data)), probe, base=start, joblib_arrays=False,
                           budget=[0], result=result)
        try:
            machine.run()
        except (Malformed, LimitExceeded):
            pass
        if not result.dangerous_seen:
            return
        self.ctx.add(
            "pickle.joblib-array-opcodes",
            Severity.HIGH,
            "array data that parses as pickle opcodes",
            "Bytes stored as joblib array data parse as pickle opcodes that import globals: joblib.load skips "
            "them, but pickle.load on the same file executes them (a loader-differential payload).",
            _REMEDIATE_GLOBAL,
            offset=start,
        )
        emit_global_findings(self.ctx, result)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        count = [0]
        try:
            self._loop(count)
        finally:
            self.budget[0] += count[0]
            self.res.opcodes += count[0]

    def _loop(self, count: list[int]) -> None:
        read = self.read
        stack = self.stack
        memo = self.memo
        res = self.res
        ctx = self.ctx
        maxops = ctx.limits.max_opcodes - self.budget[0]
        n_ops = 0
        try:
            while True:
                self.op_offset = pos = self.pos
                if self.frame_end is not None and pos >= self.frame_end:
                    self._frame_done(pos)
                b = read(1)
                if not b:
                    raise Malformed("The pickle ends without a STOP opcode (truncated).", pos)
                self.pos = pos + 1
                op = b[0]
                self._op = op
                n_ops += 1
                if n_ops & 0x1FFF == 0:
                    ctx.check_time()
                    if n_ops > maxops:
                        raise LimitExceeded(
                            "limit.opcodes",
                            f"The pickle has more than {ctx.limits.max_opcodes} opcodes; analysis stopped "
                            "(ScanLimits.max_opcodes).",
                        )
                stack = self.stack
                # Order roughly by frequency in real model pickles; the hottest ones are inlined.
                if op == 0x94:  # MEMOIZE
                    if not stack:
                        self._top()
                    memo[len(memo)] = stack[-1]
                elif op == 0x8C:  # SHORT_BINUNICODE
                    raw = read(1)
                    if raw:
                        data = read(raw[0])
                        if len(data) == raw[0]:
                            self.pos += 1 + raw[0]
                            if data[:3] in _NESTED_TEXT:
                                self._nested(data, "text")
                            try:
                                stack.append(data.decode("utf-8", "surrogatepass"))
                            except UnicodeDecodeError:
                                            raise Malformed("A string is not valid UTF-8.", pos) from None
                            continue
                    raise Malformed("The pickle is truncated inside SHORT_BINUNICODE.", pos)
                elif op == 0x71:  # BINPUT
                    if not stack:
                        self._top()
                    memo[self._need(1)[0]] = stack[-1]
                elif op == 0x68:  # BINGET
                    stack.append(self._get(self._need(1)[0]))
                    if type(stack[-1]) is _Global:
                        self._repush(stack[-1])
                    elif type(stack[-1]) in _SHARED:
                        self.shared += 1
                elif op == 0x6A:  # LONG_BINGET
                    stack.append(self._get(struct.unpack("<I", self._need(4))[0]))
                    if type(stack[-1]) is _Global:
                        self._repush(stack[-1])
                    elif type(stack[-1]) in _SHARED:
                        self.shared += 1
                elif op == 0x72:  # LONG_BINPUT
                    self.memo[struct.unpack("<I", self._need(4))[0]] = self._top()
                elif op == 0x28:  # MARK
                    self.metastack.append(stack)
                    self.stack = []
                elif op == 0x4B:  # BININT1
                    stack.append(self._need(1)[0])
                elif op == 0x4D:  # BININT2
                    stack.append(struct.unpack("<H", self._need(2))[0])
                elif op == 0x4A:  # BININT
                    stack.append(struct.unpack("<i", self._need(4))[0])
                elif op == 0x4E:  # NONE
                    stack.append(None)
                elif op == 0x88:
                    stack.append(True)
                elif op == 0x89:
                    stack.append(False)
                elif op == 0x29:  # EMPTY_TUPLE
                    stack.append(())
                elif op == 0x85:  # TUPLE1
                    stack.append((self._pop(),))
                elif op == 0x86:  # TUPLE2
                    b2 = self._pop()
                    a2 = self._pop()
                    stack.append((a2, b2))
                elif op == 0x87:  # TUPLE3
                    c3 = self._pop()
                    b3 = self._pop()
                    a3 = self._pop()
                    stack.append((a3, b3, c3))
                elif op == 0x74:  # TUPLE
                    items = self._pop_mark()
                    self.stack.append(tuple(items))
                elif op == 0x5D:  # EMPTY_LIST
                    stack.append([])
                elif op == 0x7D:  # EMPTY_DICT
                    stack.append({})
                elif op == 0x61:  # APPEND
                    value = self._pop()
                    target = self._top()
                    self._append(target, [value], "APPEND")
                elif op == 0x65:  # APPENDS
                    items = self._pop_mark()
                    target = self._top()
                    self._append(target, items, "APPENDS")
                elif op == 0x73:  # SETITEM
                    value = self._pop()
                    key = self._pop()
                    self._setitems(self._top(), [key, value], "SETITEM")
                elif op == 0x75:  # SETITEMS
                    items = self._pop_mark()
                    self._setitems(self._top(), items, "SETITEMS")
                elif op == 0x93:  # STACK_GLOBAL
                    name = self._pop()
                    module = self._pop()
                    stack.append(self._global(module, name, "STACK_GLOBAL"))
                elif op == 0x63:  # GLOBAL
                    module = self._line_text("GLOBAL")
                    name = self._line_text("GLOBAL")
                    stack.append(self._global(module, name, "GLOBAL"))
                elif op == 0x52:  # REDUCE
                    args = self._pop()
                    func = self._pop()
                    stack.append(self._call(func, args, "REDUCE"))
                elif op == 0x81:  # NEWOBJ
                    args = self._pop()
                    cls = self._pop()
                    stack.append(self._call(cls, args, "NEWOBJ"))
                elif op == 0x92:  # NEWOBJ_EX
                    kwargs = self._pop()
                    args = self._pop()
                    cls = self._pop()
                    # keyword arguments reach cls.__new__ like positional ones: judge them as one more argument
                    call_args = (*args, kwargs) if isinstance(args, tuple) and kwargs != {} else args
                    stack.append(self._call(cls, call_args, "NEWOBJ_EX"))
                elif op == 0x62:  # BUILD
                    state = self._pop()
                    target = self._top()
                    self._mutate_check(target, "BUILD")
                    if isinstance(target, _Obj):
                        self._build_check(target, state)
                        if target.state is None:
                            target.state = state
                        if self.joblib_arrays and _constructed_wrapper(target):
                            self._joblib_array(target, state)
                elif op == 0x2E:  # STOP
                    value = self._pop()
                    res.first_value = value if res.first_value is None else res.first_value
                    res.complete = True
                    if self.shared >= _SHARED_CHECK:
                        self._expansion(value)
                    return
                elif op == 0x80:  # PROTO
                    proto = self._need(1)[0]
                    if proto > 5:
                        raise Malformed(f"Unsupported pickle protocol {proto} (at most 5 exists).", self.op_offset)
                    res.protocol = max(res.protocol, proto)
                elif op == 0x95:  # FRAME
                    size = struct.unpack("<Q", self._need(8))[0]
                    if size > sys.maxsize:
                        raise Malformed(f"FRAME length {size} is too large.", self.op_offset)
                    if self.frame_end is not None and self.op_offset < self.frame_end:
                        self._frame_anomaly("A FRAME starts before the current frame ends")
                    self.frame_end = self.pos + size
                elif op == 0x47:  # BINFLOAT
                    stack.append(struct.unpack(">d", self._need(8))[0])
                elif op == 0x58:  # BINUNICODE
                    n = struct.unpack("<I", self._need(4))[0]
                    stack.append(self._text_blob(n))
                elif op == 0x8D:  # BINUNICODE8
                    n = struct.unpack("<Q", self._need(8))[0]
                    stack.append(self._text_blob(n))
                elif op == 0x43:  # SHORT_BINBYTES
                    stack.append(self._blob(self._need(1)[0], "bytes", _KEEP_BYTES))
                elif op == 0x42:  # BINBYTES
                    stack.append(self._blob(struct.unpack("<I", self._need(4))[0], "bytes", _KEEP_BYTES))
                elif op == 0x8E:  # BINBYTES8
                    stack.append(self._blob(struct.unpack("<Q", self._need(8))[0], "bytes", _KEEP_BYTES))
                elif op == 0x96:  # BYTEARRAY8
                    stack.append(self._blob(struct.unpack("<Q", self._need(8))[0], "bytearray", 0))
                elif op == 0x55:  # SHORT_BINSTRING
                    stack.append(_py2str(self._blob(self._need(1)[0], "str", _KEEP_STR)))
                elif op == 0x54:  # BINSTRING
                    n = struct.unpack("<i", self._need(4))[0]
                    if n < 0:
                        raise Malformed("BINSTRING has a negative length.", self.op_offset)
                    stack.append(_py2str(self._blob(n, "str", _KEEP_STR)))
                elif op == 0x8A:  # LONG1
                    n = self._need(1)[0]
                    stack.append(int.from_bytes(self._need(n), "little", signed=True) if n <= 64 else
                                 self._blob(n, "int", 0))
                elif op == 0x8B:  # LONG4
                    n = struct.unpack("<i", self._need(4))[0]
                    if n < 0:
                        raise Malformed("LONG4 has a negative byte count.", self.op_offset)
                    stack.append(int.from_bytes(self._need(n), "little", signed=True) if n <= 64 else
                                 self._blob(n, "int", 0))
                elif op == 0x8F:  # EMPTY_SET
                    stack.append(_Opaque("set"))
                elif op == 0x90:  # ADDITEMS
                    self._pop_mark()
                    self._mutate_check(self._top(), "ADDITEMS")
                elif op == 0x91:  # FROZENSET
                    self._pop_mark()
                    self.stack.append(_Opaque("frozenset"))
                elif op == 0x30:  # POP
                    if stack:
                        stack.pop()
                    else:
                        self._pop_mark()
                elif op == 0x31:  # POP_MARK
                    self._pop_mark()
                elif op == 0x32:  # DUP
                    stack.append(self._top())
                    if type(stack[-1]) is _Global:
                        self._repush(stack[-1])
                    elif type(stack[-1]) in _SHARED:
                        self.shared += 1
                elif op == 0x6C:  # LIST
                    items = self._pop_mark()
                    self.stack.append(list(items))
                elif op == 0x64:  # DICT
                    items = self._pop_mark()
                    d: dict[Any, Any] = {}
                    self._setitems(d, items, "DICT")
                    self.stack.append(d)
                elif op == 0x49:  # INT
                    line = self._line()
                    if line == b"00":
                        stack.append(False)
                    elif line == b"01":
                        stack.append(True)
                    else:
                        stack.append(self._parse_int(line, "INT"))
                elif op == 0x4C:  # LONG
                    line = self._line()
                    if line.endswith(b"L"):
                        line = line[:-1]
                    stack.append(self._parse_int(line, "LONG"))
                elif op == 0x46:  # FLOAT
                    line = self._line()
                    try:
                        stack.append(float(line))
                    except ValueError:
                        raise Malformed(f"FLOAT has an invalid value {line[:40]!r}.", self.op_offset) from None
                elif op == 0x53:  # STRING
                    stack.append(self._string_line())
                elif op == 0x56:  # UNICODE
                    line = self._line()
                    try:
                        stack.append(self._text(codecs.decode(line, "raw-unicode-escape").encode("utf-8")))
                    except (UnicodeDecodeError, ValueError):
                        raise Malformed("UNICODE holds an invalid escape.", self.op_offset) from None
                elif op == 0x67:  # GET
                    stack.append(self._get(self._parse_int(self._line(), "GET")))
                    if type(stack[-1]) is _Global:
                        self._repush(stack[-1])
                    elif type(stack[-1]) in _SHARED:
                        self.shared += 1
                elif op == 0x70:  # PUT
                    idx = self._parse_int(self._line(), "PUT")
                    if idx < 0:
                        raise Malformed("PUT has a negative memo index.", self.op_offset)
                    self.memo[idx] = self._top()
                elif op == 0x69:  # INST
                    module = self._line_text("INST")
                    name = self._line_text("INST")
                    args = tuple(self._pop_mark())
                    cls = self._global(module, name, "INST")
                    self.stack.append(self._call(cls, args, "INST"))
                elif op == 0x6F:  # OBJ
                    items = self._pop_mark()
                    if not items:
                        raise Malformed("OBJ has no class on the stack.", self.op_offset)
                    self.stack.append(self._call(items[0], tuple(items[1:]), "OBJ"))
                elif op == 0x50:  # PERSID
                    pid = self._line()
                    self.stack.append(self._persistent(pid.decode("ascii", "replace"), "PERSID"))
                elif op == 0x51:  # BINPERSID
                    self.stack.append(self._persistent(self._pop(), "BINPERSID"))
                elif op in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
                    width = {0x82: 1, 0x83: 2, 0x84: 4}[op]
                    code = int.from_bytes(self._need(width), "little")
                    res.dangerous_seen = True
                    ctx.add(
                        "pickle.extension-code",
                        Severity.HIGH,
                        f"{_opname(op)} {code}",
                        f"The pickle names a global through the copyreg extension registry (code {code}); what it "
                        "resolves to depends on the loading process, so it cannot be checked.",
                        _REMEDIATE_GLOBAL,
                        offset=self.op_offset,
                    )
                    stack.append(_Global("<extension>", str(code), self.op_offset))
                elif op == 0x97:  # NEXT_BUFFER
                    ctx.add(
                        "pickle.out-of-band-buffer",
                        Severity.MEDIUM,
                        "NEXT_BUFFER",
                        "The pickle expects out-of-band buffers from its loader (protocol 5); the data they "
                        "carry is not part of this file.",
                        "Make sure the loader supplies the buffers from a trusted source.",
                        offset=self.op_offset,
                    )
                    stack.append(_Opaque("buffer"))
                elif op == 0x98:  # READONLY_BUFFER
                    self._top()
                else:
                    raise Malformed(f"Invalid pickle opcode 0x{op:02x}.", self.op_offset)
        finally:
            count[0] = n_ops

    # -- helpers for values ------------------------------------------------------------------
    def _text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise Malformed("A string is not valid UTF-8.", self.op_offset) from None

    def _text_blob(self, n: int) -> Any:
        if n > _KEEP_STR:
            return self._blob(n, "str", 0)
        raw = self._need(n)
        if raw[:3] in _NESTED_TEXT:
            self._nested(raw, "text")
        return self._text(raw)

    def _line_text(self, what: str) -> str:
        raw = self._line()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed(f"{what} names are not valid UTF-8.", self.op_offset) from None

    def _parse_int(self, line: bytes, what: str) -> int:
        try:
            return int(line)
        except ValueError:
            raise Malformed(f"{what} has an invalid integer {line[:40]!r}.", self.op_offset) from None

    def _string_line(self) -> Any:
        line = self._line().rstrip()
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b'"', b"'"):
            try:
                return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
            except ValueError:
                raise Malformed("STRING holds an invalid escape.", self.op_offset) from None
        raise Malformed("STRING argument is not quoted.", self.op_offset)

    def _get(self, idx: int) -> Any:
        try:
            return self.memo[idx]
        except KeyError:
            raise Malformed(f"Memo get of index {idx}, which was never stored.", self.op_offset) from None

    def _build_check(self, target: _Obj, state: Any) -> None:
        """BUILD calls ``__setstate__`` (found on the instance first) or writes ``__dict__``/slots."""
        if target.planted is not None and "__setstate__" in target.planted:
            self._implicit(f"BUILD calls a __setstate__ that an earlier BUILD planted on {_describe(target)}")
        self._stored_classes(state, target)
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        cls = _class_of(target)
        for part in parts:
            if not isinstance(part, dict):
                continue
            for key in part:
                if cls is not None:
                    bad = _signatures.unsafe_parameter(cls, key, part[key])
                    if bad is not None:
                        self._unsafe_parameter(bad)
                if not isinstance(key, str):
                    continue
                if key.startswith("__") and key.endswith("__") and not (key == "__doc__" and
                                                                        isinstance(part[key], str | None)):
                    # (a docstring is data: scipy's distributions keep their own in the instance dict)
                    self._implicit(f"BUILD sets the attribute {key!r} on {_describe(target)}")
                if key in _PLANTABLE or key == "__setstate__":
                    target.planted = (target.planted or frozenset()) | {key}

    def _stored_classes(self, value: Any, target: Any) -> None:
        """A class stored in state or in a container (BUILD, APPEND(S), SETITEM(S)) is a deferred call."""
        for item in _reachable(value):
            if isinstance(item, _Global) and _policy.is_allowed(item.module, item.name):
                stored = ".".join(_policy.normalize(item.module, item.name))
                if not _signatures.callable_with_arguments(stored):
                    self._stored_class(stored, target)

    def _stored_class(self, stored: str, target: Any) -> None:
        self.ctx.add(
            "pickle.constructor-call",
            Severity.HIGH,
            f"{stored} (stored)",
            f"The pickle stores the class {stored} in {_describe(target)}; the model's own code calls what "
            "it stores (FunctionTransformer.func with its kw_args, a partial's func, a scorer), which runs the "
            "constructor with arguments the file chose. Library pickles store only functions and value types.",
            _REMEDIATE_GLOBAL,
            offset=self.op_offset,
        )
        self.res.dangerous_seen = True

    def _unsafe_parameter(self, what: str) -> None:
        self.ctx.add(
            "pickle.unsafe-parameter",
            Severity.HIGH,
            what,
            f"The pickle sets {what}: the model would act on the host when it predicts (a vectorizer with "
            "input='filename' opens every document it is given as a file path, so requests name files to read).",
            _REMEDIATE_GLOBAL,
            offset=self.op_offset,
        )
        self.res.dangerous_seen = True

    def _implicit(self, what: str) -> None:
        self.ctx.add(
            "pickle.implicit-call",
            Severity.HIGH,
            what,
            f"{what}; the unpickler calls such attributes by itself, so this turns object state into a call.",
            _REMEDIATE_GLOBAL,
            offset=self.op_offset,
        )
        self.res.dangerous_seen = True

    def _container_target(self, target: Any, method: str, how: str) -> None:
        if isinstance(target, _Obj) and target.planted is not None and method in target.planted:
            self._implicit(f"{how} calls {method!r}, planted as an instance attribute on {_describe(target)}")

    def _append(self, target: Any, items: list[Any], how: str) -> None:
        self._mutate_check(target, how)
        self._container_target(target, "extend" if how == "APPENDS" else "append", how)
        if how == "APPENDS":
            self._container_target(target, "append", how)
        self._stored_classes(items, target)
        if isinstance(target, list) and len(target) < _KEEP_ITEMS:
            target.extend(items)

    def _setitems(self, target: Any, items: list[Any], how: str) -> None:
        if len(items) % 2:
            raise Malformed(f"{how} has an odd number of items.", self.op_offset)
        self._mutate_check(target, how)
        self._container_target(target, "__setitem__", how)
        self._stored_classes(items, target)
        if isinstance(target, dict) and len(target) < _KEEP_ITEMS:
            for i in range(0, len(items), 2):
                key = items[i]
                try:
                    target[key] = items[i + 1]
                except TypeError:
                    continue

    def _persistent(self, pid: Any, how: str) -> _Pers:
        if not self.allow_persid:
            self.ctx.add(
                "pickle.persistent-id",
                Severity.HIGH,
                f"{how} {_describe(pid)}",
                "The pickle asks its loader to resolve a persistent id; outside a PyTorch archive that "
                "hands control to loader code the scanner cannot see.",
                _REMEDIATE_GLOBAL,
                offset=self.op_offset,
            )
        return _Pers(pid)


def _is_identifier_path(value: str) -> bool:
    return bool(value) and all(part.isidentifier() for part in value.split("."))


_TORCHSCRIPT_HELPERS = frozenset(
    f"torch.jit._pickle.{n}"
    for n in ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "build_tensor_from_id",
              "restore_type_tag")
)


def emit_global_findings(ctx: ScanContext, result: PickleResult) -> None:
    """Turn the globals one analysis saw into findings (critical, unknown call, unknown type, info)."""
    torchscript = "torchscript" in ctx.flags
    for use in result.uses.values():
        full = f"{use.module}.{use.name}"
        if torchscript and (use.module == "__torch__" or use.module.startswith("__torch__.")
                            or full in _TORCHSCRIPT_HELPERS):
            # Resolved by TorchScript's C++ unpickler against the archive's own code/, never imported.
            continue
        offset = use.called_at if use.called_at is not None else use.offset
        hit = _policy.critical_match(use.module, use.name)
        if hit is not None and use.calls and use.calls == use.method_lookups == use.pushes:
            continue  # every single use looked up an allowed method of an allowed class (exempt per use)
        if hit is not None:
            verb = "calls" if use.called_at is not None else "references"
            ctx.add(
                "pickle.dangerous-global",
                Severity.CRITICAL,
                full,
                f"The pickle {verb} {full} ({use.how}), which gives code execution or system access "
                f"(matches {hit!r}).",
                _REMEDIATE_GLOBAL,
                offset=offset,
            )
        elif _policy.is_allowed(use.module, use.name):
            mod, nm = _policy.normalize(use.module, use.name)
            note = _policy.NOTEWORTHY.get(f"{mod}.{nm}")
            if note is not None:
                ctx.add("pickle.noteworthy-global", Severity.INFO, full, f"{full}: {note}.",
                        "No action needed.", offset=offset)
        elif use.called_at is not None or "." in use.name:
            # A dotted name is an attribute chain walked at load time (protocol 4 find_class);
            # legitimate pickles name classes directly, so treat it like a call.
            ctx.add(
                "pickle.unknown-callable",
                Severity.HIGH,
                full,
                f"The pickle {'calls' if use.called_at is not None else 'walks the attribute chain'} {full}, "
                "which is not on the allowlist of callables that model libraries need at load time.",
                _remediate_unknown(full),
                offset=offset,
            )
        else:
            # A reference reaches call sites: an argument or state that loading code calls, a
            # defaultdict factory, model code after loading. It counts as a call.
            ctx.add(
                "pickle.unknown-global",
                Severity.HIGH,
                full,
                f"The pickle references {full}, which is not on the allowlist; a reference reaches call sites "
                "(arguments, object state, model code after loading), so it counts as a call.",
                _remediate_unknown(full),
                offset=offset,
            )


def _remediate_unknown(full: str) -> str:
    if full.startswith("__main__."):
        return (f"{full} is a class defined in the training script, so only that script can load the file. "
                "Move it into an importable package, or, after auditing it, register the model with "
                f"--allow-finding 'pickle.unknown-global:{full}' --reason TEXT (the decision is audited).")
    return _REMEDIATE_UNKNOWN + (" After auditing it, allow it per model with --allow-finding RULE:" + full +
                                 " --reason TEXT (audited).")


def analyze_pickle_stream(
    stream: IO[bytes],
    ctx: ScanContext,
    *,
    base: int = 0,
    joblib_arrays: bool = True,
    tentative: bool = False,
    max_pickles: int | None = None,
    sequence: int | None = None,
) -> PickleResult | None:
    """Analyse consecutive pickles in ``stream`` and add findings to ``ctx``.

    With ``tentative`` (content without a PROTO header) a stream that fails before naming any
    global or call is judged "not a pickle" and None is returned without findings.
    ``sequence`` says the format holds exactly that many pickles followed by raw data (legacy
    PyTorch): they are analysed without a "several pickles" finding and the rest is not read.
    """
    budget = [0]
    total = PickleResult()
    limit = max_pickles or ctx.limits.max_pickles_per_stream
    pos = base
    count = 0
    abandoned = False
    try:
        while True:
            result = PickleResult()
            machine = _Machine(stream, ctx, base=pos, joblib_arrays=joblib_arrays, budget=budget, result=result)
            mark = len(ctx.findings)
            try:
                machine.run()
            except Malformed as exc:
                if count == 0 and tentative and not result.dangerous_seen:
                    del ctx.findings[mark:]
                    abandoned = True
                    return None
                if count > 0 and not result.dangerous_seen and sequence is None:
                    ctx.add("pickle.trailing-data", Severity.HIGH, "data after STOP",
                            "Bytes that are not a valid pickle follow the pickle's STOP opcode. A file that "
                            "is more than one pickle is not what any model library writes; a loader that "
                            "reads again would run them.",
                            _REMEDIATE_MALFORMED, offset=pos)
                else:
                    if count > 0 and sequence is None:
                        _multiple(ctx, pos)
                    ctx.add("pickle.malformed", Severity.HIGH, "malformed pickle",
                            f"{exc.message} The unpickler executes the opcodes before this point.",
                            _REMEDIATE_MALFORMED, offset=exc.offset)
                break
            finally:
                _merge(total, result)
            count += 1
            if count == 2 and sequence is None:
                _multiple(ctx, pos)
            pos = machine.pos
            if sequence is not None and count >= sequence:
                break
            peek = stream.read(1)
            if not peek:
                break
            # Put the byte back by chaining a one-byte prefix onto the stream.
            stream = _Prefixed(peek, stream)  # type: ignore[assignment]  # read/readline are all it needs
            if count >= limit:
                ctx.add("limit.pickles", Severity.HIGH, "many pickles",
                        f"More than {limit} consecutive pickles; the rest was not analysed.",
                        _REMEDIATE_MALFORMED, offset=pos)
                break
    finally:
        if not abandoned:
            emit_global_findings(ctx, total)
    total.end = pos
    return total


def _multiple(ctx: ScanContext, offset: int) -> None:
    ctx.add("pickle.multiple-pickles", Severity.HIGH, "several pickles",
            "The file holds more than one pickle. pickle.load reads only the first, but a loader that "
            "calls it again executes the next, and scanners that stop at the first STOP miss it.",
            _REMEDIATE_MALFORMED, offset=offset)


def _merge(total: PickleResult, part: PickleResult) -> None:
    for key, use in part.uses.items():
        mine = total.uses.get(key)
        if mine is None:
            total.uses[key] = use
        elif mine.called_at is None and use.called_at is not None:
            mine.called_at = use.called_at
    total.opcodes += part.opcodes
    part.opcodes = 0
    total.protocol = max(total.protocol, part.protocol)
    if total.first_value is None:
        total.first_value = part.first_value
    total.complete = total.complete or part.complete
    total.dangerous_seen = total.dangerous_seen or part.dangerous_seen
    part.uses = {}


class _Prefixed:
    """A read-only stream that yields ``prefix`` before the rest of ``inner``."""

    def __init__(self, prefix: bytes, inner: IO[bytes]) -> None:
        self._prefix = prefix
        self._inner = inner

    def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            return self._inner.read(n)
        if n < 0:
            data = self._prefix + self._inner.read()
            self._prefix = b""
            return data
        head, self._prefix = self._prefix[:n], self._prefix[n:]
        if len(head) < n:
            head += self._inner.read(n - len(head))
        return head

    def readline(self, limit: int = -1) -> bytes:
        if not self._prefix:
            return self._inner.readline(limit)
        head = self._prefix
        self._prefix = b""
        if head.endswith(b"\n") or (limit >= 0 and len(head) >= limit):
            return head
        rest = self._inner.readline(-1 if limit < 0 else limit - len(head))
        return head + rest


def looks_like_pickle(head: bytes) -> bool:
    """Cheap check: a PROTO header, or a first byte that is a pickle opcode (confirmed by parsing)."""
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return True
    return bool(head) and head[0] in OPCODE_BYTES


class PickleScanner(FormatScanner):
    """Raw pickle files (any protocol), joblib files and legacy (non-zip) PyTorch saves."""

    name = "pickle"

    def sniff(self, head: bytes) -> bool:
        return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        from bastion.scan import torch as torch_scan

        if torch_scan.is_legacy_torch(stream_head(stream)):
            torch_scan.scan_legacy_pickle(stream, ctx)
            return
        result = analyze_pickle_stream(stream, ctx)
        if result is not None and any(key in joblib_scan.WRAPPERS for key in result.uses):
            ctx.label = "joblib"


def stream_head(stream: IO[bytes], n: int = 64) -> bytes:
    """Peek at the start of a buffered stream without consuming it."""
    peek = getattr(stream, "peek", None)
    if peek is not None:
        data: bytes = peek(n)
        return data[:n]
    if stream.seekable():
        where = stream.tell()
        data = stream.read(n)
        stream.seek(where)
        return data
    return b""
