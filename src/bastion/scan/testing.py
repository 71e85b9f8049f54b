"""Conformance checks for `FormatScanner` implementations (built-in and third-party plugins).

Plugin authors run ``check_scanner(MyScanner(), samples=[...])`` in their own test suite.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterable

from bastion.scan.interface import (
    CONTENT_ERRORS,
    Finding,
    FormatScanner,
    LimitExceeded,
    ScanContext,
    ScanLimits,
    Severity,
)

__all__ = ["check_scanner"]

_TOLERATED: tuple[type[BaseException], ...] = (LimitExceeded, *CONTENT_ERRORS)
_RULE_ID = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)+")


def _context(findings: list[Finding], size: int) -> ScanContext:
    from bastion.scan._engine import _dispatch

    limits = ScanLimits(time_per_file=5.0)
    return ScanContext(
        file="<conformance>",
        inner_path=None,
        limits=limits,
        depth=0,
        deadline=time.monotonic() + limits.time_per_file,
        findings=findings,
        size=size,
        _dispatch=_dispatch,
    )


def check_scanner(scanner: FormatScanner, samples: Iterable[bytes] = (), *, fuzz: int = 50) -> None:
    """Raise AssertionError when ``scanner`` breaks the `FormatScanner` contract.

    Checks: a non-empty ``name``; ``sniff`` returns a bool for any head (empty, random); ``scan``
    of every sample it claims, and of ``fuzz`` truncated or random variants of them, returns
    normally (content problems are findings, limits raise `LimitExceeded`) and reports only
    well-formed findings.
    """
    assert isinstance(scanner.name, str) and scanner.name, "FormatScanner.name must be a non-empty string"
    for head in (b"", b"\0", os.urandom(64), os.urandom(4096)):
        assert isinstance(scanner.sniff(head), bool), f"{scanner.name}.sniff must return a bool"
    claimed = [s for s in samples if scanner.sniff(s[:4096])]
    variants = list(claimed)
    for i in range(fuzz if claimed else 0):
        base = claimed[i % len(claimed)]
        cut = base[: max(1, (len(base) * (i % 7)) // 7)]
        noisy = bytearray(base)
        if len(noisy) > 8:
            pos = 8 + (i * 7919) % (len(noisy) - 8)
            noisy[pos] ^= 0xFF
        variants += [cut, bytes(noisy)]
    for data in variants:
        if not scanner.sniff(data[:4096]):
            continue  # the engine never hands it content it does not claim
        findings: list[Finding] = []
        try:
            scanner.scan(io.BufferedReader(io.BytesIO(data)), _context(findings, len(data)))
        except _TOLERATED:
            pass  # a limit finding, or damage the engine reports as format.corrupt
        except Exception as exc:  # the contract: never raise for content
            raise AssertionError(f"{scanner.name}.scan raised {type(exc).__name__}: {exc} on {data[:32]!r}") from exc
        for f in findings:
            assert _RULE_ID.fullmatch(f.rule_id), f"rule id {f.rule_id!r} must be dotted lower-case words"
            assert isinstance(f.severity, Severity), f"{f.rule_id}: severity must be a Severity"
            assert f.message and f.remediation, f"{f.rule_id}: message and remediation are required"
