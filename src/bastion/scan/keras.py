"""Keras models: ``.keras`` zip configs and legacy HDF5 ``.h5`` files (``model_config`` attribute).

Lambda layers carry marshalled Python bytecode; custom objects name modules Keras imports.
"""

from __future__ import annotations

import json
import re

from bastion.scan import _policy
from bastion.scan.interface import FormatScanner, Severity

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO, Any

    from bastion.scan.interface import ScanContext

__all__ = ["Hdf5Scanner", "check_config", "is_keras_zip", "scan_config_stream"]

_REM_LAMBDA = (
    "Replace Lambda layers with registered layer classes and re-save; never load this file with "
    "safe_mode=False."
)
_REM_CUSTOM = "Review the custom object's source; load only with custom_objects you wrote yourself."
_KERAS_MODULES = ("keras", "tensorflow.keras", "tf_keras", "keras_nlp", "keras_cv", "keras_hub")
_SAFE_BUILTINS = frozenset({"tuple", "list", "dict", "set", "slice", "int", "float", "str", "bool", "bytes"})


def is_keras_zip(names: list[str]) -> bool:
    """True for the Keras 3 ``.keras`` layout (config.json plus metadata.json or weights)."""
    return "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)


def _keras_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _KERAS_MODULES)


def check_config(config: Any, ctx: ScanContext, *, offset: int | None = None) -> None:
    """Walk a Keras config at any depth (nested sub-models included) and add findings."""
    stack: list[tuple[Any, str]] = [(config, "$")]
    reported: set[tuple[str, str]] = set()
    visited = 0
    while stack:
        node, where = stack.pop()
        visited += 1
        if visited & 0xFFF == 0:
            ctx.check_time()
        if isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        cls = node.get("class_name")
        inner = node.get("config")
        name = node.get("name") or (inner.get("name") if isinstance(inner, dict) else None)
        label = f"{cls} {name!r} at {where}" if name else f"{cls} at {where}"
        if cls == "Lambda" or cls == "__lambda__" or node.get("function_type") == "lambda":
            ctx.add("keras.lambda", Severity.CRITICAL, label,
                    "The model has a Lambda layer: Keras deserializes its Python bytecode and runs it when the "
                    "model is loaded or called.", _REM_LAMBDA, offset=offset)
            continue  # its function dict is the same finding
        stack.extend((v, f"{where}.{k}") for k, v in node.items())
        module = node.get("module")
        registered = node.get("registered_name")
        if not isinstance(cls, str):
            continue
        if isinstance(module, str):
            target = node.get("config") if cls == "function" and isinstance(node.get("config"), str) else cls
            hit = _policy.critical_match(module, str(target))
            key = (module, str(target))
            if key in reported:
                continue
            if hit is not None:
                reported.add(key)
                ctx.add("keras.dangerous-object", Severity.CRITICAL, f"{module}.{target} at {where}",
                        f"The config makes Keras import and use {module}.{target}, which gives code execution "
                        f"or file/network access (matches {hit!r}).", _REM_CUSTOM, offset=offset)
            elif module == "builtins" and str(target) in _SAFE_BUILTINS:
                continue
            elif not _keras_module(module):
                reported.add(key)
                ctx.add("keras.custom-object", Severity.HIGH, f"{module}.{target} at {where}",
                        f"The config names {module}.{target}, outside Keras; loading imports that module and "
                        "runs its code.", _REM_CUSTOM, offset=offset)
        if isinstance(registered, str) and ">" in registered and (module is None or not _keras_module(module)):
            key = ("registered", registered)
            if key not in reported:
                reported.add(key)
                ctx.add("keras.custom-object", Severity.HIGH, f"{registered} at {where}",
                        f"The config uses the registered custom object {registered!r}; its code lives outside "
                        "the file and must be trusted.", _REM_CUSTOM, offset=offset)


def scan_config_stream(stream: IO[bytes], ctx: ScanContext) -> None:
    """Analyse a ``config.json``/``metadata.json`` member of a ``.keras`` zip."""
    raw = stream.read(ctx.limits.max_header_bytes + 1)
    if len(raw) > ctx.limits.max_header_bytes:
        ctx.add("limit.size", Severity.HIGH, "config.json", "The Keras config is larger than "
                "ScanLimits.max_header_bytes; it was not analysed.", "Reject the file or raise the limit.")
        return
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        ctx.add("keras.bad-config", Severity.HIGH, "config.json", f"The Keras config is not valid JSON ({exc}); "
                "Keras would refuse it, other tools may read it differently.", _REM_CUSTOM)
        return
    check_config(config, ctx)


_CONFIG_START = re.compile(rb'\{\s*"(class_name|module)"\s*:')
_MARKERS = (b'"Lambda"', b"__lambda__", b'"function_type": "lambda"')
_CHUNK = 1 << 22


class Hdf5Scanner(FormatScanner):
    """Legacy Keras HDF5 files: Keras configs found in attributes are parsed and checked.

    Reads the file as a byte stream (no h5py): attribute strings are stored uncompressed, so each
    JSON config that starts with ``{"class_name":`` or ``{"module":`` is decoded where it lies.
    Lambda markers outside any decoded config are findings too.
    """

    name = "hdf5"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"\x89HDF\r\n\x1a\n")

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        decoder = json.JSONDecoder()
        pos = 0
        tail = b""
        configs = 0
        covered_until = -1
        spans: list[tuple[int, int]] = []
        marker_hits: list[tuple[int, bytes]] = []
        while True:
            ctx.check_time()
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            window = tail + chunk
            base = pos - len(tail)
            for marker in _MARKERS:
                i = window.find(marker)
                while i >= 0:
                    marker_hits.append((base + i, marker))
                    i = window.find(marker, i + 1)
            for match in _CONFIG_START.finditer(window):
                start = base + match.start()
                if start <= covered_until or configs >= 64:
                    continue
                text = self._text_at(stream, start, ctx, window, base)
                try:
                    config, used = decoder.raw_decode(text)
                except (ValueError, RecursionError):
                    continue
                configs += 1
                covered_until = start + len(text[:used].encode("utf-8", "replace"))
                spans.append((start, covered_until))
                check_config(config, ctx, offset=start)
            pos += len(chunk)
            tail = window[-64:]
        if configs:
            ctx.label = "keras-hdf5"
        lambdas = [f"{m.decode()} at byte {off}" for off, m in marker_hits
                   if not any(a <= off < b for a, b in spans)]
        if lambdas:
            ctx.add("keras.lambda", Severity.HIGH, lambdas[0],
                    "The file contains Lambda-layer markers outside any readable Keras config "
                    f"({len(lambdas)} places); it may hide serialized code.", _REM_LAMBDA)

    def _text_at(self, stream: IO[bytes], start: int, ctx: ScanContext, window: bytes, base: int) -> str:
        rel = start - base
        data = window[rel:]
        want = min(ctx.limits.max_header_bytes, 1 << 23)
        if len(data) < want and stream.seekable():
            here = stream.tell()
            stream.seek(start + len(data))
            data += stream.read(want - len(data))
            stream.seek(here)
        end = data.find(b"\x00")
        if end >= 0:
            data = data[:end]
        return data.decode("utf-8", "replace")
