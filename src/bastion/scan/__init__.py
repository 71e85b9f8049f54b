"""Artifact scanner: allowlist analysis of model files in every common format, never executing them.

``scan_path(path)`` returns a `ScanReport`; see ``docs/scanner.md``.
"""

from __future__ import annotations

from bastion.scan._engine import scan_bytes, scan_path
from bastion.scan.detect import detect_format
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
