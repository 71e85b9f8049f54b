"""safetensors header validation."""

from __future__ import annotations

import json
import struct

import pytest

from bastion.scan import Severity, scan_bytes


def _st(header: dict[str, object] | bytes, data: bytes, *, size: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if size is None else size) + raw + data


GOOD = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]}, "__metadata__": {"format": "pt"}}


def _rules(data: bytes) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in scan_bytes(data).findings:
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


def test_valid_file_is_clean() -> None:
    report = scan_bytes(_st(GOOD, b"\0" * 24))
    assert report.files[0].format == "safetensors"
    assert report.findings == ()


@pytest.mark.parametrize(
    "data",
    [
        _st(GOOD, b"\0" * 24, size=1 << 40),
        _st(b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}', b"\0" * 4),
        _st({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}}, b"\0" * 4),
        _st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
        _st({"w": {"dtype": "EVIL", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        _st({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}, b"\0" * 4),
        _st(b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
            b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4),
        _st({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
        _st({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4),
        _st({"__metadata__": {"a": 1}}, b""),
        _st({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "code": "x"}}, b"\0" * 4),
    ],
    ids=["header-size", "bad-json", "out-of-file", "overlap", "dtype", "size-mismatch", "duplicate-key",
         "negative-dim", "reversed-offsets", "metadata-type", "extra-key"],
)
def test_invalid_headers_are_high(data: bytes) -> None:
    assert _rules(data)["safetensors.invalid"] == Severity.HIGH


def test_gap_is_low() -> None:
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    assert _rules(_st(header, b"\0" * 12)) == {"safetensors.gap": Severity.LOW}


def test_real_file_is_clean() -> None:
    from pathlib import Path

    from bastion.scan import scan_path

    report = scan_path(Path(__file__).parent / "data" / "safetensors" / "model.safetensors")
    assert report.files[0].format == "safetensors"
    assert report.findings == ()
