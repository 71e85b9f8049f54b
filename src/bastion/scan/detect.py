"""Recognize an artifact's format from its first bytes (magic numbers), never from its name.

Peers choose a scanner by file extension and so skip renamed, extension-less and archived
files; Bastion looks at content only.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["HEAD_BYTES", "detect_format", "looks_like_onnx"]

#: How many leading bytes detection looks at.
HEAD_BYTES = 4096

_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x93NUMPY", "numpy"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"GGUF", "gguf"),
    (b"GGML", "gguf"),
    (b"GGJT", "gguf"),
    (b"GGLA", "gguf"),
)

# ModelProto fields: number -> wire type (0 varint, 2 length-delimited).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    result = 0
    shift = 0
    while pos < len(buf) and shift < 70:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    return None


def looks_like_onnx(head: bytes) -> bool:
    """True when ``head`` parses as the start of an ONNX ModelProto (ir_version first)."""
    if not head or head[0] != 0x08:
        return False
    pos = 0
    seen = 0
    while pos < len(head) and seen < 6:
        tag = _varint(head, pos)
        if tag is None:
            return seen >= 2
        key, pos = tag
        number, wire = key >> 3, key & 7
        if _ONNX_FIELDS.get(number) != wire:
            return False
        value = _varint(head, pos)
        if value is None:
            return seen >= 2
        n, pos = value
        if number == 1 and not 1 <= n <= 64:
            return False
        if wire == 2:
            if number in (2, 3, 4) and not all(32 <= c < 127 for c in head[pos : pos + min(n, 64)]):
                return False
            pos += n
        seen += 1
    return seen >= 2


def _lzma_alone(head: bytes) -> bool:
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dict_size = struct.unpack("<I", head[1:5])[0]
    if not 1 << 12 <= dict_size <= 1 << 31:
        return False
    size = struct.unpack("<Q", head[5:13])[0]
    if not (size == 0xFFFFFFFFFFFFFFFF or size < 1 << 48):
        return False
    import lzma

    try:  # the magic is weak: confirm the start decodes
        lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(head, max_length=64)
    except lzma.LZMAError:
        return False
    return True


def _zlib(head: bytes) -> bool:
    # zlib.compress (and joblib) always write CMF 0x78; the check digit alone is too weak.
    if len(head) < 3 or head[0] != 0x78 or (head[0] << 8 | head[1]) % 31 != 0:
        return False
    try:
        zlib.decompressobj().decompress(head, 64)
    except zlib.error:
        return False
    return True


def detect_format(head: bytes) -> str:
    """Name the format of content starting with ``head``.

    Returns one of ``zip, gzip, bz2, xz, lzma, zlib, lz4, 7z, tar, numpy, hdf5, gguf,
    safetensors, pickle, onnx, empty`` or ``unknown`` (which may still be a headerless
    protocol 0/1 pickle; the engine tries that).
    """
    if not head:
        return "empty"
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    for offset in (512, 1024, 2048):
        if head[offset : offset + 8] == b"\x89HDF\r\n\x1a\n":
            return "hdf5"
    if head[:3] == b"BZh" and head[3:4].isdigit():
        return "bz2"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    # 0x00 is no pickle opcode: a safetensors header of 128-133 bytes starts 0x80 0x0N 0x00
    if head[0] == 0x80 and len(head) >= 2 and head[1] <= 5 and not (head[2:3] == b"\x00" and head[8:9] == b"{"):
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] >= 2:
        return "safetensors"
    if _lzma_alone(head):
        return "lzma"
    if _zlib(head):
        return "zlib"
    if looks_like_onnx(head):
        return "onnx"
    return "unknown"
