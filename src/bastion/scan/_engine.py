"""The scan engine: walk files, recognize each by content, dispatch to format scanners, collect a report.

Scanners never raise for content problems: limits and damage become findings here.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from bastion.errors import ScanError
from bastion.scan._streams import is_real_file, read_head
from bastion.scan.detect import HEAD_BYTES, detect_format
from bastion.scan.interface import (
    CONTENT_ERRORS,
    FileError,
    Finding,
    FormatScanner,
    LimitExceeded,
    ScanContext,
    ScanLimits,
    ScannedFile,
    ScanReport,
    Severity,
)

__all__ = ["builtin_scanners", "plugin_scanners", "scan_bytes", "scan_path"]

log = logging.getLogger("bastion.scan")

_FATAL_LIMITS = frozenset({"limit.time", "limit.size"})
_DEFAULT_LIMITS = ScanLimits()
_THREAD_HASH_BYTES = 8 << 20
# Plugins are offered only content long enough to carry a format header: tiny unknown members
# (torch's "version", "byteorder") would otherwise pay for entry-point discovery on every scan.
_PLUGIN_MIN_BYTES = 64  # below this, hashing inline is cheaper than starting a thread
_VERSION = "1"


class _Abort(Exception):
    """A limit that ends the whole file's scan (time, total size)."""


def builtin_scanners() -> dict[str, FormatScanner]:
    """Built-in scanners by the format names `detect_format` returns."""
    from bastion.scan.archive import CompressedScanner, SevenZipScanner, TarScanner, ZipScanner
    from bastion.scan.gguf import GgufScanner
    from bastion.scan.keras import Hdf5Scanner
    from bastion.scan.numpy import NumpyScanner
    from bastion.scan.onnx import OnnxScanner
    from bastion.scan.pickle import PickleScanner
    from bastion.scan.safetensors import SafetensorsScanner

    compressed = CompressedScanner()
    table: dict[str, FormatScanner] = {
        "zip": ZipScanner(),
        "tar": TarScanner(),
        "7z": SevenZipScanner(),
        "numpy": NumpyScanner(),
        "hdf5": Hdf5Scanner(),
        "gguf": GgufScanner(),
        "safetensors": SafetensorsScanner(),
        "onnx": OnnxScanner(),
        "pickle": PickleScanner(),
    }
    for kind in CompressedScanner.formats:
        table[kind] = compressed
    return table


_PLUGINS: list[FormatScanner] | None = None
_BUILTINS: dict[str, FormatScanner] | None = None


def plugin_scanners() -> list[FormatScanner]:
    """Third-party scanners from the ``bastion.scanners`` entry-point group (loaded once)."""
    global _PLUGINS
    if _PLUGINS is None:
        from importlib import metadata

        found: list[FormatScanner] = []
        for ep in metadata.entry_points(group="bastion.scanners"):
            try:
                obj = ep.load()
                scanner = obj() if isinstance(obj, type) else obj
            except Exception:
                log.warning("Scanner plugin %r failed to load; it is skipped.", ep.name, exc_info=True)
                continue
            if isinstance(scanner, FormatScanner):
                found.append(scanner)
            else:
                log.warning("Scanner plugin %r is not a FormatScanner; it is skipped.", ep.name)
        _PLUGINS = found
    return _PLUGINS


def _builtins() -> dict[str, FormatScanner]:
    global _BUILTINS
    if _BUILTINS is None:
        _BUILTINS = builtin_scanners()
    return _BUILTINS


def _dispatch(stream: IO[bytes], ctx: ScanContext) -> str:
    head, stream = read_head(stream, HEAD_BYTES)
    fmt = detect_format(head)
    ctx.label = fmt
    scanner = _builtins().get(fmt)
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

            if looks_like_pickle(head):
                result = analyze_pickle_stream(stream, ctx, tentative=True)
                if result is not None:
                    ctx.label = "pickle"
        if fmt != "zip" and is_real_file(stream) and _has_zip_directory(stream):
            # zipfile (Keras, numpy.load of .npz via zipfile, plain unzip) finds a zip by its end record,
            # so a file that starts as something else can still load as a zip (a polyglot).
            ctx.add("archive.polyglot", Severity.MEDIUM, f"{ctx.label} + zip",
                    f"The {ctx.label} content also holds a zip archive (found from the end of the file); "
                    "zip-based loaders will read that part. Its members were analysed too.",
                    "Re-export the artifact from a trusted environment; a model file is one format.")
            _builtins()["zip"].scan(stream, ctx)
    except LimitExceeded as exc:
        ctx.add(exc.rule_id, Severity.HIGH, "resource limit", exc.message,
                "Scan the artifact with larger ScanLimits if it is expected to be this large, or reject it.")
        if exc.rule_id in _FATAL_LIMITS:
            raise _Abort from exc
    except _Abort:
        raise
    except CONTENT_ERRORS as exc:
        ctx.add("format.corrupt", Severity.HIGH, ctx.label, f"The {ctx.label} content is damaged ({exc}); "
                "the part before the damage was analysed.",
                "Obtain a fresh copy of the artifact from its producer and scan it again.")
    except (RecursionError, MemoryError) as exc:
        ctx.add("scan.resource", Severity.HIGH, ctx.label, f"The content exhausts the analyser "
                f"({type(exc).__name__}); it is built to break scanners.", "Reject the artifact.")
    except Exception as exc:  # a scanner bug must never pass a file as clean
        log.exception("Scanner for %s failed on %s", ctx.label, ctx.file)
        ctx.add("scan.internal-error", Severity.HIGH, ctx.label,
                f"The {ctx.label} scanner failed ({type(exc).__name__}: {exc}); the file is treated as "
                "unverified.", "Report the failure to the Bastion maintainers; do not load the file meanwhile.")
    return ctx.label


def _has_zip_directory(stream: IO[bytes]) -> bool:
    try:
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


class _Hasher(threading.Thread):
    """Hashes a file beside the scan (hashlib releases the GIL), so the digest costs no wall time."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.digest = ""
        self.error: OSError | None = None

    def run(self) -> None:
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
    digest: bool = True,
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
        Compute each file's SHA-256 (in a thread beside the scan). Hashing reads every byte,
        which on large checkpoints costs more than the scan itself (which reads only pickles).

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
            if hasher is not None and hasher.is_alive():
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
