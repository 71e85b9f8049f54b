"""The scanner seam: the `FormatScanner` abstract class and the frozen result types.

Format scanners (built-in or from the ``bastion.scanners`` entry-point group) implement
`FormatScanner`; results are `Finding`, `ScannedFile`, `FileError` and `ScanReport`.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

# typing, zipfile, tarfile and lzma stay off the scan's start-up path (`bastion model scan` is
# timed whole-process against peers); annotations are strings, so they need no import at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any, ClassVar

__all__ = [
    "CONTENT_ERRORS",
    "SCHEMA_VERSION",
    "FileError",
    "Finding",
    "FormatScanner",
    "LimitExceeded",
    "ScanContext",
    "ScanLimits",
    "ScanReport",
    "ScannedFile",
    "Severity",
    "content_errors",
]

SCHEMA_VERSION = 1

#: Exceptions a scanner may let escape for damaged content; the engine reports them as
#: ``format.corrupt`` (HIGH). Anything else escaping a scanner is reported as a scanner bug.
#: (Built on first use by `content_errors`, so importing the scanner does not import every archive module.)
CONTENT_ERRORS: tuple[type[BaseException], ...]
_content_errors: tuple[type[BaseException], ...] | None = None


def content_errors() -> tuple[type[BaseException], ...]:
    """`CONTENT_ERRORS`: EOF, OS, value, struct, zip, tar, lzma and zlib errors."""
    global _content_errors
    if _content_errors is None:
        import lzma
        import struct
        import tarfile
        import zipfile
        import zlib

        _content_errors = (
            EOFError,
            OSError,
            ValueError,
            struct.error,
            zipfile.BadZipFile,
            tarfile.TarError,
            lzma.LZMAError,
            zlib.error,
        )
    return _content_errors


def __getattr__(name: str) -> tuple[type[BaseException], ...]:
    if name == "CONTENT_ERRORS":
        return content_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so ``Severity.HIGH > Severity.MEDIUM``."""

    INFO = 10
    LOW = 20
    MEDIUM = 30
    HIGH = 40
    CRITICAL = 50

    @property
    def label(self) -> str:
        """Lower-case name used in JSON and SARIF (``"high"``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """Read a severity from its name, case-insensitive (``"high"`` -> ``Severity.HIGH``)."""
        if isinstance(value, Severity):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"A severity must be one of {names}; got {value!r}.") from None


@dataclass(frozen=True)
class Finding:
    """One thing the scanner found: where, what construct, how bad, why, and what to do."""

    rule_id: str
    severity: Severity
    file: str
    inner_path: str | None
    offset: int | None
    construct: str
    message: str
    remediation: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rule_id": self.rule_id,
            "severity": self.severity.label,
            "file": self.file,
            "inner_path": self.inner_path,
            "offset": self.offset,
            "construct": self.construct,
            "message": self.message,
            "remediation": self.remediation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Read a finding back from `to_dict` output."""
        return cls(
            rule_id=str(data["rule_id"]),
            severity=Severity.parse(data["severity"]),
            file=str(data["file"]),
            inner_path=data.get("inner_path"),
            offset=data.get("offset"),
            construct=str(data.get("construct", "")),
            message=str(data.get("message", "")),
            remediation=str(data.get("remediation", "")),
        )


@dataclass(frozen=True)
class ScannedFile:
    """A top-level file that was scanned, with the format recognized from its content.

    ``sha256`` is None when the scan was asked not to hash (``scan_path(..., digest=False)``).
    """

    path: str
    format: str
    size: int
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"path": self.path, "format": self.format, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class FileError:
    """A file inside a scanned folder that could not be read at all (permission, vanished)."""

    path: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class ScanLimits:
    """Resource limits; hitting one is a finding (rule ``limit.*``), never a crash.

    Sizes are bytes. ``max_ratio`` applies once a compressed stream has expanded past
    ``ratio_floor_bytes`` (tiny, highly compressible files are normal).
    """

    max_depth: int = 6
    max_members: int = 20_000
    max_expanded_bytes: int = 16 * 2**30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 32 * 2**20
    max_opcodes: int = 20_000_000
    max_pickles_per_stream: int = 64
    time_per_file: float = 120.0
    max_header_bytes: int = 64 * 2**20
    spool_memory_bytes: int = 16 * 2**20

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_members", "max_expanded_bytes", "max_opcodes", "max_header_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ScanLimits.{name} must be a positive integer; got {value!r}.")
        if self.time_per_file <= 0 or self.max_ratio <= 1:
            raise ValueError(
                "ScanLimits.time_per_file must be > 0 and max_ratio > 1; "
                f"got {self.time_per_file!r} and {self.max_ratio!r}."
            )


class LimitExceeded(Exception):
    """Raised inside scanners when a limit is hit; the engine turns it into a finding."""

    def __init__(self, rule_id: str, message: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.message = message


@dataclass
class ScanContext:
    """What a format scanner gets besides the stream: where it is, the limits, and a sink.

    ``inner_path`` is the path inside containers (``"model.zip!archive/data.pkl"`` joined with
    ``!`` per nesting level). ``flags`` carry context such as ``"torch"`` (persistent ids allowed). A scanner may
    refine ``label`` (the format name reported, e.g. ``"pytorch"`` for a zip).
    """

    file: str
    inner_path: str | None
    limits: ScanLimits
    depth: int
    deadline: float
    findings: list[Finding]
    flags: frozenset[str] = frozenset()
    size: int | None = None
    label: str = ""
    expanded: list[int] = field(default_factory=lambda: [0])
    _dispatch: Callable[[IO[bytes], ScanContext], str] | None = None

    def add(
        self,
        rule_id: str,
        severity: Severity,
        construct: str,
        message: str,
        remediation: str,
        *,
        offset: int | None = None,
    ) -> None:
        """Record a finding at this context's location."""
        self.findings.append(
            Finding(
                rule_id=rule_id,
                severity=severity,
                file=self.file,
                inner_path=self.inner_path,
                offset=offset,
                construct=construct,
                message=message,
                remediation=remediation,
            )
        )

    def check_time(self) -> None:
        """Raise `LimitExceeded` once the per-file time budget is spent."""
        if time.monotonic() > self.deadline:
            raise LimitExceeded(
                "limit.time",
                f"Scanning stopped after the per-file time limit of {self.limits.time_per_file:g} s; "
                "the rest of the file was not analysed.",
            )

    def child(self, name: str, *, flags: frozenset[str] | None = None, size: int | None = None) -> ScanContext:
        """Context for a member ``name`` one container level deeper."""
        inner = name if self.inner_path is None else f"{self.inner_path}!{name}"
        return ScanContext(
            file=self.file,
            inner_path=inner,
            limits=self.limits,
            depth=self.depth + 1,
            deadline=self.deadline,
            findings=self.findings,
            flags=self.flags if flags is None else flags,
            size=size,
            expanded=self.expanded,
            _dispatch=self._dispatch,
        )

    def scan_nested(self, stream: IO[bytes], name: str, *, flags: frozenset[str] | None = None,
                    size: int | None = None) -> str:
        """Recognize and scan a member stream (recursion into archives); returns its format."""
        ctx = self.child(name, flags=flags, size=size)
        if ctx.depth > self.limits.max_depth:
            ctx.add(
                "limit.depth",
                Severity.HIGH,
                "nesting",
                f"Containers are nested deeper than {self.limits.max_depth} levels; this member was not analysed.",
                "Unpack the artifact by hand and scan its parts, or raise ScanLimits.max_depth.",
            )
            return "unscanned"
        if self._dispatch is None:
            raise RuntimeError("ScanContext has no dispatcher")
        return self._dispatch(stream, ctx)


class FormatScanner(ABC):
    """One artifact format: recognize it by content, then scan a stream of it.

    Implementations must never import or execute what they scan. Everything odd inside the
    content becomes a finding through ``ctx.add``; a hit limit raises `LimitExceeded`; damage
    may surface as one of `CONTENT_ERRORS` (reported as ``format.corrupt``). Check a scanner
    with `bastion.scan.testing.check_scanner`.
    """

    #: Format name shown in reports (``"pickle"``, ``"safetensors"``).
    name: ClassVar[str] = ""

    @abstractmethod
    def sniff(self, head: bytes) -> bool:
        """True when ``head`` (the first up to 4 KiB of the content) is this format."""

    @abstractmethod
    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        """Analyse ``stream`` (positioned at 0; seekable for top-level files) and add findings."""


def _severity_counts(findings: tuple[Finding, ...]) -> dict[str, int]:
    counts = {s.label: 0 for s in Severity}
    for f in findings:
        counts[f.severity.label] += 1
    return counts


@dataclass(frozen=True)
class ScanReport:
    """The result of scanning a file or a folder."""

    target: str
    files: tuple[ScannedFile, ...]
    findings: tuple[Finding, ...]
    errors: tuple[FileError, ...] = ()
    duration_s: float = 0.0
    scanner_version: str = ""

    @property
    def max_severity(self) -> Severity | None:
        """The worst severity among the findings, or None when there are none."""
        return max((f.severity for f in self.findings), default=None)

    def is_clean(self, fail_on: Severity | str = Severity.HIGH) -> bool:
        """True when no finding reaches ``fail_on`` and every file could be read."""
        threshold = Severity.parse(fail_on)
        if self.errors:
            return False
        return all(f.severity < threshold for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON document (``schema_version`` 1)."""
        worst = self.max_severity
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "bastion-scan", "version": self.scanner_version},
            "target": self.target,
            "duration_s": round(self.duration_s, 6),
            "summary": {
                "files": len(self.files),
                "findings": len(self.findings),
                "errors": len(self.errors),
                "max_severity": worst.label if worst is not None else None,
                "by_severity": _severity_counts(self.findings),
            },
            "files": [f.to_dict() for f in self.files],
            "findings": [f.to_dict() for f in self.findings],
            "errors": [e.to_dict() for e in self.errors],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanReport:
        """Read a report back from `to_dict` output (schema_version 1)."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"A scan report must have schema_version {SCHEMA_VERSION}; got {version!r}.")
        return cls(
            target=str(data.get("target", "")),
            files=tuple(ScannedFile(**f) for f in data.get("files", [])),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", [])),
            errors=tuple(FileError(**e) for e in data.get("errors", [])),
            duration_s=float(data.get("duration_s", 0.0)),
            scanner_version=str(data.get("tool", {}).get("version", "")),
        )

    def to_sarif(self) -> dict[str, Any]:
        """SARIF 2.1.0 log for code-scanning dashboards."""
        from bastion.scan.report import to_sarif

        return to_sarif(self)

    def to_text(self) -> str:
        """Plain-text rendering (no colour, no rich), for files, pipes and logs."""
        from bastion.scan.report import to_text

        return to_text(self)
