"""The scan engine: walk files, recognize each by content, dispatch to format scanners, collect a report.

Scanners never raise for content problems: limits and damage become findings here.
"""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

from bastion.errors import ScanError
from bastion.scan._streams import is_real_file, read_head
from bastion.scan.detect import HEAD_BYTES, detect_format
from bastion.scan.interface import (
    FileError,
    Finding,
    FormatScanner,
    LimitExceeded,
    ScanContext,
    ScanLimits,
    ScannedFile,
    ScanReport,
    Severity,
    content_errors,
)

# Format modules, hashlib, threading, logging and zipfile are imported when first needed: a whole
# `bastion model scan` process is timed against peers, and most scans need only a few of them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    import threading
    from collections.abc import Callable
    from typing import IO

__all__ = ["builtin_scanners", "plugin_scanners", "scan_bytes", "scan_path"]


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("bastion.scan")


_FATAL_LIMITS = frozenset({"limit.time", "limit.size"})
_DEFAULT_LIMITS = ScanLimits()
_THREAD_HASH_BYTES = 8 << 20  # below this, hashing inline is cheaper than starting a thread
# Plugins are offered only content long enough to carry a format header: tiny unknown members
# (torch's "version", "byteorder") would otherwise pay for entry-point discovery on every scan.
_PLUGIN_MIN_BYTES = 64
_VERSION = "1"


class _Abort(Exception):
    """A limit that ends the whole file's scan (time, total size)."""


# format name -> (module, class) of the built-in scanner; a module is imported when its format is met
_BUILTIN: dict[str, tuple[str, str]] = {
    "zip": ("bastion.scan.archive", "ZipScanner"),
    "tar": ("bastion.scan.archive", "TarScanner"),
    "7z": ("bastion.scan.archive", "SevenZipScanner"),
    "numpy": ("bastion.scan.numpy", "NumpyScanner"),
    "hdf5": ("bastion.scan.keras", "Hdf5Scanner"),
    "gguf": ("bastion.scan.gguf", "GgufScanner"),
    "safetensors": ("bastion.scan.safetensors", "SafetensorsScanner"),
    "onnx": ("bastion.scan.onnx", "OnnxScanner"),
    "pickle": ("bastion.scan.pickle", "PickleScanner"),
    **{kind: ("bastion.scan.archive", "CompressedScanner") for kind in ("gzip", "bz2", "xz", "lzma", "zlib", "lz4")},
}


def builtin_scanners() -> dict[str, FormatScanner]:
    """Built-in scanners by the format names `detect_format` returns (imports every format module)."""
    out: dict[str, FormatScanner] = {}
    for kind in _BUILTIN:
        scanner = _builtin(kind)
        assert scanner is not None
        out[kind] = scanner
    return out


_PLUGINS: list[FormatScanner] | None = None
_INSTANCES: dict[tuple[str, str], FormatScanner] = {}


def _builtin(fmt: str) -> FormatScanner | None:
    """The built-in scanner for ``fmt`` (one shared instance per class), importing its module on first use."""
    spec = _BUILTIN.get(fmt)
    if spec is None:
        return None
    scanner = _INSTANCES.get(spec)
    if scanner is None:
        import importlib

        scanner = getattr(importlib.import_module(spec[0]), spec[1])()
        _INSTANCES[spec] = scanner
    return scanner


_PLUGIN_GROUP = "bastion.scanners"


def _no_plugins_declared() -> bool:
    """True when no installed distribution declares a ``bastion.scanners`` entry point.

    Importing importlib.metadata costs more than scanning a small folder, so this first reads the
    files it would read (``*.dist-info`` / ``*.egg-info`` ``entry_points.txt`` on ``sys.path``) for the
    group's name. It is a conservative filter: anything it does not model (a zip on ``sys.path``, a
    distribution finder besides the standard one) answers False, and the real lookup runs.
    """
    import importlib.machinery
    import sys

    for finder in sys.meta_path:
        if not hasattr(finder, "find_distributions") or finder is importlib.machinery.PathFinder:
            continue
        if (type(finder).__module__, type(finder).__name__) == ("importlib_metadata", "MetadataPathFinder"):
            continue  # the importlib_metadata backport (some libraries install it) searches sys.path the same way
        return False
    needle = _PLUGIN_GROUP.encode()
    for entry in sys.path:
        folder = entry or "."
        if os.path.isfile(folder):
            return False  # a zip or egg file: let importlib.metadata look inside
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        # the names importlib.metadata matches, case-insensitively (in an .egg folder: EGG-INFO in any case)
        is_egg = os.path.basename(folder).lower().endswith(".egg")
        candidates = [os.path.join(folder, n, "entry_points.txt") for n in names
                      if n.lower().endswith((".dist-info", ".egg-info")) or (is_egg and n.lower() == "egg-info")]
        for path in candidates:
            try:
                with open(path, "rb") as fh:
                    if needle in fh.read():
                        return False
            except OSError:
                continue
    return True


def plugin_scanners() -> list[FormatScanner]:
    """Third-party scanners from the ``bastion.scanners`` entry-point group (loaded once)."""
    global _PLUGINS
    if _PLUGINS is None and _no_plugins_declared():
        _PLUGINS = []
    if _PLUGINS is None:
        from importlib import metadata

        found: list[FormatScanner] = []
        for ep in metadata.entry_points(group=_PLUGIN_GROUP):
            try:
                obj = ep.load()
                scanner = obj() if isinstance(obj, type) else obj
            except Exception:
                _log().warning("Scanner plugin %r failed to load; it is skipped.", ep.name, exc_info=True)
                continue
            if isinstance(scanner, FormatScanner):
                found.append(scanner)
            else:
                _log().warning("Scanner plugin %r is not a FormatScanner; it is skipped.", ep.name)
        _PLUGINS = found
    return _PLUGINS


def _dispatch(stream: IO[bytes], ctx: ScanContext) -> str:
    head, stream = read_head(stream, HEAD_BYTES)
    fmt = detect_format(head)
    ctx.label = fmt
    scanner = _builtin(fmt)
    if scanner is None and fmt == "unknown" and len(head) >= _PLUGIN_MIN_BYTES:
        for plugin in plugin_scanners():
            if plugin.sniff(head):
                scanner = plugin
                ctx.label = plugin.name or type(plugin).__name__
                break
    try:
        if scanner is not None:
            scanner.scan(stream, ctx)
        elif fmt == "unknown":
            from bastion.scan.pickle import analyze_pickle_stream, looks_like_pickle

            result = None
            if looks_like_pickle(head):
                result = analyze_pickle_stream(stream, ctx, tentative=True)
                if result is not None:
                    ctx.label = "pickle"
            graph = False
            if result is None and is_real_file(stream):
                from bastion.scan import tensorflow

                if tensorflow.looks_like_graph(head) and (ctx.size or 0) <= 64 << 20:
                    stream.seek(0)
                    graph = tensorflow.scan_graph(stream.read(64 << 20), ctx)
                    if graph:
                        ctx.label = "tensorflow"
            if result is None and not graph and head and b"\0" not in head and (ctx.size or 0) <= 1 << 20 \
                    and is_real_file(stream):
                from bastion.scan.configs import scan_config_text
                from bastion.scan.templates import scan_text_templates

                if scan_text_templates(stream, ctx):
                    ctx.label = "template"
                stream.seek(0)
                try:
                    text = stream.read(1 << 20).decode("utf-8")
                except UnicodeDecodeError:
                    text = ""
                if text.lstrip().startswith("{") and scan_config_text(text, ctx) and ctx.label != "template":
                    ctx.label = "config"
        if fmt != "zip" and is_real_file(stream) and _has_zip_directory(stream):
            # zipfile (Keras, numpy.load of .npz via zipfile, plain unzip) finds a zip by its end record,
            # so a file that starts as something else can still load as a zip (a polyglot).
            ctx.add("archive.polyglot", Severity.MEDIUM, f"{ctx.label} + zip",
                    f"The {ctx.label} content also holds a zip archive (found from the end of the file); "
                    "zip-based loaders will read that part. Its members were analysed too.",
                    "Re-export the artifact from a trusted environment; a model file is one format.")
            zip_scanner = _builtin("zip")
            assert zip_scanner is not None
            zip_scanner.scan(stream, ctx)
    except LimitExceeded as exc:
        ctx.add(exc.rule_id, Severity.HIGH, "resource limit", exc.message,
                "Scan the artifact with larger ScanLimits if it is expected to be this large, or reject it.")
        if exc.rule_id in _FATAL_LIMITS:
            raise _Abort from exc
    except _Abort:
        raise
    except (RecursionError, MemoryError) as exc:
        ctx.add("scan.resource", Severity.HIGH, ctx.label, f"The content exhausts the analyser "
                f"({type(exc).__name__}); it is built to break scanners.", "Reject the artifact.")
    except Exception as exc:
        if isinstance(exc, content_errors()):
            ctx.add("format.corrupt", Severity.HIGH, ctx.label, f"The {ctx.label} content is damaged ({exc}); "
                    "the part before the damage was analysed.",
                    "Obtain a fresh copy of the artifact from its producer and scan it again.")
            return ctx.label
        # a scanner bug must never pass a file as clean
        _log().exception("Scanner for %s failed on %s", ctx.label, ctx.file)
        ctx.add("scan.internal-error", Severity.HIGH, ctx.label,
                f"The {ctx.label} scanner failed ({type(exc).__name__}: {exc}); the file is treated as "
                "unverified.", "Report the failure to the Bastion maintainers; do not load the file meanwhile.")
    return ctx.label


_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 0xFFFF  # the end record plus the longest zip comment


def _has_zip_directory(stream: IO[bytes]) -> bool:
    try:
        # zipfile.is_zipfile looks for the end record in this tail too: without the signature there
        # it is False, so zipfile need not even be imported
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - _EOCD_SEARCH))
        if _EOCD not in stream.read(_EOCD_SEARCH):
            return False
        import zipfile

        stream.seek(0)
        return zipfile.is_zipfile(stream)
    except (OSError, ValueError):
        return False
    finally:
        stream.seek(0)


def _scan_one(stream: IO[bytes], label: str, size: int, limits: ScanLimits,
              findings: list[Finding]) -> str:
    ctx = ScanContext(
        file=label,
        inner_path=None,
        limits=limits,
        depth=0,
        deadline=time.monotonic() + limits.time_per_file,
        findings=findings,
        size=size,
        _dispatch=_dispatch,
    )
    try:
        return _dispatch(stream, ctx)
    except _Abort:
        return ctx.label or "unknown"


class _Hasher:
    """Hashes a file, for large files in a thread beside the scan (hashlib releases the GIL), so the
    digest costs no wall time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = ""
        self.error: OSError | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import threading

        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def run(self) -> None:
        import hashlib

        h = hashlib.sha256()
        try:
            with self.path.open("rb") as fh:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
        except OSError as exc:
            self.error = exc
            return
        self.digest = h.hexdigest()


def _iter_files(root: Path, findings: list[Finding]) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for d in list(dirnames):
            full = Path(dirpath) / d
            if full.is_symlink():
                findings.append(Finding("fs.symlink", Severity.LOW, str(full), None, None, "symlinked folder",
                                        "A symlinked folder inside the scanned folder was not followed.",
                                        "Scan the link target separately."))
        for name in sorted(filenames):
            out.append(Path(dirpath) / name)
    return out


def scan_path(
    path: str | os.PathLike[str],
    *,
    limits: ScanLimits | None = None,
    progress: Callable[[int, int], None] | None = None,
    digest: bool = False,
) -> ScanReport:
    """Scan a file or a folder (recursively) without loading or executing anything in it.

    Parameters
    ----------
    path
        A model file, an archive, or a folder.
    limits
        Resource limits; hitting one is a finding.
    progress
        Optional ``(done, total)`` callback, called once per top-level file.
    digest
        Also compute each file's SHA-256 (in a thread beside the scan; ``ScannedFile.sha256`` is None
        otherwise). Hashing reads every byte, which on large checkpoints costs far more than the scan
        itself (which reads only the pickles, never the tensor data), so it is opt-in.

    Raises
    ------
    ScanError
        When ``path`` does not exist or cannot be read at all.
    """
    limits = limits or _DEFAULT_LIMITS
    root = Path(path)
    started = time.monotonic()
    try:
        root_stat = root.stat()
    except FileNotFoundError:
        raise ScanError(f"Cannot scan {str(root)!r}: no such file or folder. Check the path and try again.") from None
    except OSError as exc:
        raise ScanError(f"Cannot read {str(root)!r}: {exc.strerror or exc}. Check permissions and retry.") from exc
    findings: list[Finding] = []
    errors: list[FileError] = []
    is_dir = stat.S_ISDIR(root_stat.st_mode)
    if is_dir:
        files = _iter_files(root, findings)
        resolved_root = root.resolve()
    elif stat.S_ISREG(root_stat.st_mode):
        files = [root]
    else:
        raise ScanError(f"Cannot scan {str(root)!r}: it is not a regular file or folder (a device, FIFO or socket).")
    scanned: list[ScannedFile] = []
    for i, file in enumerate(files):
        label = str(file)
        try:
            if is_dir:
                mode = file.lstat().st_mode
                if stat.S_ISLNK(mode):
                    target = file.resolve()
                    mode = target.stat().st_mode
                    if not target.is_relative_to(resolved_root):
                        findings.append(Finding("fs.symlink", Severity.LOW, label, None, None, "symlink",
                                                f"The file is a symlink to {str(target)!r}, outside the scanned "
                                                "folder; its target was scanned.", "Make sure the target is intended."))
                if not stat.S_ISREG(mode):
                    findings.append(Finding("fs.special-file", Severity.LOW, label, None, None, "special file",
                                            "A device, FIFO or socket in the scanned folder was not read.",
                                            "Remove it from the model folder."))
                    continue
            fh = file.open("rb", buffering=1 << 16)
        except OSError as exc:
            if not is_dir:
                raise ScanError(f"Cannot read {label!r}: {exc.strerror or exc}. Check permissions and retry.") from exc
            errors.append(FileError(label, f"cannot read: {exc.strerror or exc}"))
            continue
        with fh:
            size = os.fstat(fh.fileno()).st_size
            hasher = _Hasher(file) if digest else None
            if hasher is not None:
                if size >= _THREAD_HASH_BYTES:
                    hasher.start()
                else:
                    hasher.run()
            fmt = _scan_one(fh, label, size, limits, findings)
            if hasher is not None:
                hasher.join()
        if hasher is not None and hasher.error is not None:
            errors.append(FileError(label, f"cannot hash: {hasher.error}"))
        scanned.append(ScannedFile(label, fmt, size, hasher.digest if hasher is not None else None))
        if progress is not None:
            progress(i + 1, len(files))
    return ScanReport(
        target=str(root),
        files=tuple(scanned),
        findings=tuple(_dedupe(findings)),
        errors=tuple(errors),
        duration_s=time.monotonic() - started,
        scanner_version=_VERSION,
    )


def scan_bytes(data: bytes, *, name: str = "<bytes>", limits: ScanLimits | None = None) -> ScanReport:
    """Scan in-memory content (e.g. an upload) exactly like a file called ``name``."""
    limits = limits or _DEFAULT_LIMITS
    started = time.monotonic()
    findings: list[Finding] = []
    fmt = _scan_one(io.BytesIO(data), name, len(data), limits, findings)
    import hashlib

    return ScanReport(
        target=name,
        files=(ScannedFile(name, fmt, len(data), hashlib.sha256(data).hexdigest()),),
        findings=tuple(_dedupe(findings)),
        duration_s=time.monotonic() - started,
        scanner_version=_VERSION,
    )


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[Finding] = set()
    out = []
    for f in findings:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out
