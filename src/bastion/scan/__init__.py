"""Artifact scanner: allowlist analysis of model files in every common format, never executing them.

``scan_path(path)`` returns a `ScanReport`; see ``docs/scanner.md``.
"""

from __future__ import annotations

import os as _os
import sys as _sys
import types as _types

from bastion.scan._engine import scan_bytes, scan_path
from bastion.scan.detect import detect_format
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
)

CONTENT_ERRORS: tuple[type[BaseException], ...]  # built on first use, see __getattr__

__all__ = [
    "CONTENT_ERRORS",
    "FileError",
    "Finding",
    "FormatScanner",
    "LimitExceeded",
    "ScanContext",
    "ScanLimits",
    "ScanReport",
    "ScannedFile",
    "Severity",
    "detect_format",
    "scan_bytes",
    "scan_path",
]


def __getattr__(name: str) -> tuple[type[BaseException], ...]:
    # CONTENT_ERRORS is built on first use (it names zipfile's, tarfile's and lzma's errors)
    if name == "CONTENT_ERRORS":
        from bastion.scan.interface import content_errors

        return content_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(_types.ModuleType):
    """``import bastion.scan`` (anything that imports a scanner module) rebinds the attribute
    ``bastion.scan`` from the function to this package; calling the package scans too, so
    ``bastion.scan("model.pkl")`` works whichever it is."""

    def __call__(self, path: str | _os.PathLike[str], **kwargs: object) -> ScanReport:
        return scan_path(path, **kwargs)  # type: ignore[arg-type]


_sys.modules[__name__].__class__ = _CallableModule
