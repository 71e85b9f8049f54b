"""Format detection by magic bytes (never by extension)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import zipfile
import zlib

import pytest

from bastion.scan.detect import detect_format, looks_like_onnx


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a", b"b")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"", "empty"),
        (_zip(), "zip"),
        (gzip.compress(b"x", mtime=0), "gzip"),  # mtime=0: the same test id in every process (xdist)
        (bz2.compress(b"x"), "bz2"),
        (lzma.compress(b"x"), "xz"),
        (lzma.compress(b"x", format=lzma.FORMAT_ALONE), "lzma"),
        (zlib.compress(b"x"), "zlib"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "7z"),
        (b"\x04\x22\x4d\x18\x64\x40", "lz4"),
        (b"\x93NUMPY\x01\x00", "numpy"),
        (b"\x89HDF\r\n\x1a\n", "hdf5"),
        (b"\0" * 512 + b"\x89HDF\r\n\x1a\n", "hdf5"),
        (b"GGUF\x03\x00\x00\x00", "gguf"),
        (struct.pack("<Q", 2) + b"{}", "safetensors"),
        # a 128-133 byte safetensors header starts 0x80 0x0N 0x00: no pickle (0x00 is no opcode)
        (struct.pack("<Q", 128) + b"{" + b" " * 127, "safetensors"),
        (struct.pack("<Q", 133) + b"{" + b" " * 132, "safetensors"),
        (b"\x80\x02\x00garbage", "pickle"),  # still a (broken) pickle when no header follows
        (pickle.dumps(1, protocol=2), "pickle"),
        (pickle.dumps(1, protocol=5), "pickle"),
        (b"\0" * 257 + b"ustar\x0000", "tar"),
        (b"\x08\x08\x12\x08skl2onnx", "onnx"),
        (b"(S'x'\nios\nsystem\n.", "unknown"),  # headerless pickle: the engine parses it tentatively
        (b"hello world", "unknown"),
        (b'{"a": 1}', "unknown"),
        (b"(S", "unknown"),  # zlib check digit alone matches; content does not decode
    ],
)
def test_detect(head: bytes, fmt: str) -> None:
    assert detect_format(head) == fmt


@pytest.mark.parametrize(
    ("head", "onnx"),
    [(b"\x08\x07\x12\x04test\x3a\x00", True), (b"\x08\x07\x12\x04\x00\x01\x02\x03", False),
     (b"\x08\xff\x01", False), (b"\x09", False), (b"\x08\x07\x62\x00", False)],
)
def test_onnx_heuristic(head: bytes, onnx: bool) -> None:
    assert looks_like_onnx(head) is onnx
