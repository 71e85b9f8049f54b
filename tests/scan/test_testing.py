"""The plugin conformance helper, run against every built-in scanner."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import zipfile
from typing import IO

import pytest

from bastion.scan import FormatScanner, ScanContext
from bastion.scan._engine import builtin_scanners
from bastion.scan.testing import check_scanner


def _samples() -> list[bytes]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))
        zf.writestr("archive/version", "3")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return [
        buf.getvalue(),
        gzip.compress(pickle.dumps([1, 2])),
        pickle.dumps({"k": (1.5, "v")}, protocol=4),
        struct.pack("<Q", len(header)) + header + b"\0" * 4,
        b"\x93NUMPY\x01\x00\x76\x00{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }".ljust(128, b" ")[:127]
        + b"\n" + b"\0" * 8,
        b"GGUF" + struct.pack("<IQQ", 3, 0, 0),
        b"\x08\x07\x12\x04test:\x00",
        b"\x89HDF\r\n\x1a\n" + json.dumps({"class_name": "Sequential", "config": {}}).encode(),
    ]


@pytest.mark.parametrize("name", sorted({type(s).__name__ for s in builtin_scanners().values()}))
def test_builtin_scanners_conform(name: str) -> None:
    scanner = next(s for s in builtin_scanners().values() if type(s).__name__ == name)
    check_scanner(scanner, _samples(), fuzz=20)


class _Raises(FormatScanner):
    name = "raises"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"R")

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        raise KeyError("bug")


def test_conformance_catches_a_raising_scanner() -> None:
    with pytest.raises(AssertionError, match="raised KeyError"):
        check_scanner(_Raises(), [b"R123"])
