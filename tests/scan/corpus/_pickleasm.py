"""A tiny pickle assembler for the scanner corpus.

Hand-written opcode streams let the corpus use constructs ``pickle.dumps`` never emits
(memoised names, EXT codes, INST/OBJ, BUILD tricks, malformed tails).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

MARK = b"("
STOP = b"."
POP = b"0"
TUPLE = b"t"
REDUCE = b"R"
BUILD = b"b"
EMPTY_TUPLE = b")"
EMPTY_DICT = b"}"
EMPTY_LIST = b"]"
APPENDS = b"e"
SETITEMS = b"u"
NONE = b"N"
NEWTRUE = b"\x88"
NEWFALSE = b"\x89"
STACK_GLOBAL = b"\x93"
MEMOIZE = b"\x94"
NEWOBJ = b"\x81"
NEWOBJ_EX = b"\x92"
OBJ = b"o"
DICT = b"d"
LIST = b"l"


class Raw(bytes):
    """Opcode bytes that push exactly one value; used as an argument as is."""


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def frame(body: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body)) + body


def glob(module: str, name: str) -> Raw:
    """GLOBAL (protocol 0-3 style, newline-terminated module and name)."""
    return Raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")


def inst(module: str, name: str) -> bytes:
    return b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def ustr(s: str) -> Raw:
    """A str push in binary protocols (SHORT_BINUNICODE or BINUNICODE)."""
    data = s.encode("utf-8", "surrogatepass")
    if len(data) < 256:
        return Raw(b"\x8c" + bytes([len(data)]) + data)
    return Raw(b"X" + struct.pack("<I", len(data)) + data)


def ustr8(s: str) -> Raw:
    data = s.encode("utf-8")
    return Raw(b"\x8d" + struct.pack("<Q", len(data)) + data)


def binunicode(s: str) -> Raw:
    data = s.encode("utf-8")
    return Raw(b"X" + struct.pack("<I", len(data)) + data)


def short_binstring(s: str) -> Raw:
    """SHORT_BINSTRING: a py2 ``str``; Python 3 decodes it to str with the ASCII codec."""
    data = s.encode("ascii")
    return Raw(b"U" + bytes([len(data)]) + data)


def text_unicode(s: str) -> Raw:
    """Protocol 0 UNICODE opcode."""
    return Raw(b"V" + s.encode("raw-unicode-escape") + b"\n")


def text_string(s: str) -> Raw:
    """Protocol 0 STRING opcode (quoted repr)."""
    return Raw(b"S" + repr(s).encode("ascii") + b"\n")


def stack_global(module: str, name: str, *, push: Any = ustr) -> Raw:
    return Raw(push(module) + push(name) + STACK_GLOBAL)


def binput(i: int) -> bytes:
    return b"q" + bytes([i])


def binget(i: int) -> Raw:
    return Raw(b"h" + bytes([i]))


def put(i: int) -> bytes:
    return b"p" + str(i).encode() + b"\n"


def get(i: int) -> Raw:
    return Raw(b"g" + str(i).encode() + b"\n")


def ext1(code: int) -> Raw:
    return Raw(b"\x82" + bytes([code]))


def ext2(code: int) -> Raw:
    return Raw(b"\x83" + struct.pack("<H", code))


def value(v: Any, *, text: bool = False) -> bytes:
    """Opcodes that push a plain Python value (str, int, bool, None, list, tuple, dict)."""
    if isinstance(v, Raw):
        return bytes(v)
    if v is None:
        return NONE
    if isinstance(v, bool):
        if text:
            return b"I01\n" if v else b"I00\n"
        return NEWTRUE if v else NEWFALSE
    if isinstance(v, int):
        if text or not 0 <= v < 2**31:
            return b"I" + str(v).encode() + b"\n"
        if v < 256:
            return b"K" + bytes([v])
        return b"J" + struct.pack("<i", v)
    if isinstance(v, float):
        return b"F" + repr(v).encode() + b"\n" if text else b"G" + struct.pack(">d", v)
    if isinstance(v, str):
        return text_unicode(v) if text else ustr(v)
    if isinstance(v, bytes):
        if text:
            raise ValueError("bytes need a binary protocol")
        return b"C" + bytes([len(v)]) + v if len(v) < 256 else b"B" + struct.pack("<I", len(v)) + v
    if isinstance(v, list):
        if text:
            return MARK + b"".join(value(x, text=True) for x in v) + LIST
        return EMPTY_LIST + (MARK + b"".join(value(x) for x in v) + APPENDS if v else b"")
    if isinstance(v, tuple):
        return tup(v, text=text)
    if isinstance(v, dict):
        body = b"".join(value(k, text=text) + value(x, text=text) for k, x in v.items())
        if text:
            return MARK + body + DICT
        return EMPTY_DICT + (MARK + body + SETITEMS if v else b"")
    raise TypeError(f"cannot encode {type(v).__name__}")


def tup(items: Sequence[Any], *, text: bool = False) -> bytes:
    if not items and not text:
        return EMPTY_TUPLE
    return MARK + b"".join(value(x, text=text) for x in items) + TUPLE


def call(fn: bytes, *args: Any, text: bool = False) -> Raw:
    """``fn(*args)`` through REDUCE; the result stays on the stack."""
    return Raw(bytes(fn) + tup(args, text=text) + REDUCE)


def program(body: bytes, *, protocol: int = 4, framed: bool = False) -> bytes:
    """A complete pickle: PROTO, body, STOP."""
    if protocol == 0:
        return body + STOP
    inner = body + STOP
    if framed and protocol >= 4:
        return proto(protocol) + frame(inner)
    return proto(protocol) + inner
