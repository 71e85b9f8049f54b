"""A small stdlib-only 7z reader for the scanner: lists members and streams their bytes.

Handles the common layouts (Copy, LZMA, LZMA2, Deflate, BZip2 folders with one coder, or a BCJ/Delta
filter in front of LZMA2; solid folders; plain or encoded headers); anything else raises
`SevenZipUnsupported` so the caller can fall back to ``py7zr``. Every count, size and offset in the
archive is checked before use.
"""

from __future__ import annotations

import io
import lzma
import struct
import zlib
from dataclasses import dataclass

from bastion.errors import ScanError
from bastion.scan.interface import LimitExceeded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Any

__all__ = [
    "SevenZipArchive",
    "SevenZipCorrupt",
    "SevenZipError",
    "SevenZipMember",
    "SevenZipUnsupported",
]

SIGNATURE = b"7z\xbc\xaf\x27\x1c"
_START = struct.Struct("<QQI")  # next-header offset, size, CRC
_SIG_HEADER = 32
_CHUNK = 1 << 16

# property ids (7zFormat.txt)
_END, _HEADER, _ARCHIVE_PROPS, _ADDITIONAL, _MAIN, _FILES = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
_PACK_INFO, _UNPACK_INFO, _SUBSTREAMS, _SIZE, _CRC, _FOLDER = 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B
_UNPACK_SIZE, _NUM_UNPACK, _EMPTY_STREAM, _EMPTY_FILE, _ANTI, _NAME = 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11
_ATTRIBUTES, _ENCODED_HEADER, _DUMMY = 0x15, 0x17, 0x19
# file properties whose payload the scanner does not need: times, comment, start position
_SKIPPABLE = frozenset({0x12, 0x13, 0x14, 0x16, 0x18, _DUMMY})

_COPY, _LZMA, _LZMA2, _DEFLATE, _BZIP2 = b"\x00", b"\x03\x01\x01", b"\x21", b"\x04\x01\x08", b"\x04\x02\x02"
_AES = b"\x06\xf1\x07\x01"
_DELTA = b"\x03"
# branch-converter and delta filters liblzma runs in front of LZMA2 (py7zr's default is BCJ x86 + LZMA2)
_FILTERS = {b"\x03\x03\x01\x03": ("BCJ x86", lzma.FILTER_X86), b"\x03\x03\x05\x01": ("BCJ ARM", lzma.FILTER_ARM),
            b"\x03\x03\x07\x01": ("BCJ ARM Thumb", lzma.FILTER_ARMTHUMB),
            b"\x03\x03\x02\x05": ("BCJ PowerPC", lzma.FILTER_POWERPC),
            b"\x03\x03\x08\x05": ("BCJ SPARC", lzma.FILTER_SPARC), b"\x03\x03\x04\x01": ("BCJ IA64", lzma.FILTER_IA64),
            _DELTA: ("Delta", lzma.FILTER_DELTA)}
_KNOWN_UNSUPPORTED = {
    b"\x03\x04\x01": "PPMd", b"\x04\x01\x09": "Deflate64", b"\x04\xf7\x11\x01": "Zstandard",
    b"\x04\xf7\x11\x02": "Brotli", b"\x0a": "the ARM64 filter", b"\x03\x03\x01\x1b": "the BCJ2 filter",
}
_CODER_NAMES = {_COPY: "Copy", _LZMA: "LZMA", _LZMA2: "LZMA2", _DEFLATE: "Deflate", _BZIP2: "BZip2"}
_MAX_CODERS = 4

_ATTR_DIRECTORY = 0x10
_ATTR_REPARSE_POINT = 0x400
_ATTR_UNIX_EXTENSION = 0x8000
_S_IFMT, _S_IFLNK = 0o170000, 0o120000


class SevenZipError(ScanError):
    """Base of the 7z reader's errors."""


class SevenZipUnsupported(SevenZipError):
    """The archive is valid as far as read but uses a feature this reader does not implement."""

    def __init__(self, message: str, *, encrypted: bool = False) -> None:
        super().__init__(message)
        self.encrypted = encrypted


class SevenZipCorrupt(SevenZipError, ValueError):
    """The archive is damaged or malformed.

    Also a ValueError, so damage met while a nested scanner reads a member surfaces as one of
    the scanner's content errors (``format.corrupt``) rather than as a scanner failure.
    """


@dataclass(frozen=True)
class SevenZipMember:
    """One archive entry: name, declared size, kind, CRC, and the solid folder holding its bytes."""

    name: str
    size: int
    is_dir: bool
    is_anti: bool
    attributes: int | None
    crc: int | None
    folder: int | None  # None for entries without data (directories, empty files)

    @property
    def has_data(self) -> bool:
        """True when the entry has a byte stream in a folder (possibly of size 0)."""
        return self.folder is not None

    @property
    def is_link(self) -> bool:
        """True for symbolic links (Unix mode in the high attribute bits) and Windows reparse points."""
        attr = self.attributes
        if attr is None:
            return False
        if attr & _ATTR_REPARSE_POINT:
            return True
        return bool(attr & _ATTR_UNIX_EXTENSION) and (attr >> 16) & _S_IFMT == _S_IFLNK


@dataclass(frozen=True)
class _Folder:
    chain: tuple[tuple[bytes, bytes], ...]  # (coder id, properties), filters first, the compressor last
    pack_offset: int  # absolute offset in the file
    pack_size: int
    pack_crc: int | None
    unpack_size: int
    crc: int | None


class _Header:
    """Bounds-checked cursor over the header bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise SevenZipCorrupt("The 7z header ends in the middle of a field.")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.left():
            raise SevenZipCorrupt(f"The 7z header declares {n} bytes where {self.left()} remain.")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def number(self) -> int:
        first = self.byte()
        mask = 0x80
        value = 0
        for i in range(8):
            if not first & mask:
                return value | ((first & (mask - 1)) << (8 * i))
            value |= self.byte() << (8 * i)
            mask >>= 1
        return value

    def count(self, what: str, limit: int) -> int:
        """A NUMBER used as an item count, at most ``limit``."""
        n = self.number()
        if n > limit:
            raise SevenZipCorrupt(f"The 7z header declares {n} {what}; at most {limit} fit in it.")
        return n

    def expect(self, pid: int, where: str) -> None:
        got = self.byte()
        if got != pid:
            raise SevenZipUnsupported(f"The 7z {where} has property {got:#04x} where {pid:#04x} was expected.")

    def bits(self, n: int) -> list[bool]:
        raw = self.take((n + 7) // 8)
        return [bool(raw[i >> 3] & (0x80 >> (i & 7))) for i in range(n)]

    def defined(self, n: int) -> list[bool]:
        return [True] * n if self.byte() else self.bits(n)

    def digests(self, n: int) -> list[int | None]:
        flags = self.defined(n)
        raw = self.take(4 * sum(flags))
        values = iter(struct.unpack(f"<{sum(flags)}I", raw))
        return [next(values) if f else None for f in flags]


@dataclass
class _Streams:
    folders: list[_Folder]
    substreams: list[tuple[int, int, int | None]]  # (folder, size, crc) in order


def _check_chain(chain: list[tuple[bytes, bytes]]) -> None:
    if any(coder == _AES for coder, _ in chain):
        raise SevenZipUnsupported("The 7z archive is encrypted (AES-256).", encrypted=True)
    for coder, _ in chain:
        if coder not in _CODER_NAMES and coder not in _FILTERS:
            name = _KNOWN_UNSUPPORTED.get(coder, f"coder {coder.hex() or '(empty)'}")
            raise SevenZipUnsupported(f"The 7z archive uses {name}, which the built-in reader does not decode.")
    *filters, (last, props) = chain
    if filters and (last != _LZMA2 or any(c not in _FILTERS for c, _ in filters)):
        names = " + ".join(_FILTERS.get(c, (_CODER_NAMES.get(c, c.hex()), 0))[0] for c, _ in chain)
        raise SevenZipUnsupported(f"The 7z folder chains {names}; the built-in reader decodes filters only in "
                                  "front of LZMA2.")
    if last in _FILTERS:
        raise SevenZipUnsupported(f"The 7z folder ends in the {_FILTERS[last][0]} filter without a compressor.")
    for coder, p in filters:
        if (coder == _DELTA and len(p) != 1) or (coder != _DELTA and p):
            raise SevenZipUnsupported(f"The 7z {_FILTERS[coder][0]} filter has properties {p.hex()}.")
    if last == _LZMA and len(props) != 5:
        raise SevenZipCorrupt(f"LZMA coder properties must be 5 bytes; got {len(props)}.")
    if last == _LZMA2 and (len(props) != 1 or props[0] > 40):
        raise SevenZipCorrupt(f"LZMA2 coder properties must be one byte <= 40; got {props.hex()}.")


def _read_folder(h: _Header) -> tuple[list[tuple[bytes, bytes]], int]:
    """The coders in liblzma's order (filters first, decompressor last) and the index of the final one."""
    num_coders = h.number()
    if not 1 <= num_coders <= _MAX_CODERS:
        raise SevenZipUnsupported(f"The 7z folder has {num_coders} coders.")
    chain = []
    for _ in range(num_coders):
        flags = h.byte()
        if flags & 0x80 or flags & 0x40:
            raise SevenZipUnsupported("The 7z coder uses alternative methods or reserved flags.")
        coder = h.take(flags & 0x0F)
        if flags & 0x10:
            n_in, n_out = h.number(), h.number()
            if (n_in, n_out) != (1, 1):
                raise SevenZipUnsupported(f"The 7z coder has {n_in} inputs and {n_out} outputs.")
        props = h.take(h.count("property bytes", h.left())) if flags & 0x20 else b""
        chain.append((coder, props))
    # Only a plain chain is decoded: each coder reads the output of at most one other, one coder
    # (the last stage) produces the folder's data, and one reads the packed stream. 7-Zip lists the
    # last stage first, py7zr the other way round; the bind pairs say which.
    feeds: dict[int, int] = {}  # coder index -> index of the coder whose output it reads
    for _ in range(num_coders - 1):
        into, out_of = h.number(), h.number()
        if into >= num_coders or out_of >= num_coders or into in feeds or out_of in feeds.values():
            raise SevenZipUnsupported(f"The 7z folder binds its coders as ({into}, {out_of}), not as a chain.")
        feeds[into] = out_of
    finals = set(range(num_coders)) - set(feeds.values())
    if len(finals) != 1:
        raise SevenZipUnsupported("The 7z folder's coders do not form a single chain.")
    stage = finals.pop()
    order = [stage]
    while stage in feeds and len(order) <= num_coders:
        stage = feeds[stage]
        order.append(stage)
    if sorted(order) != list(range(num_coders)):
        raise SevenZipUnsupported("The 7z folder's coders do not form a single chain.")
    chain = [chain[i] for i in order]  # the final stage first, the decompressor last (liblzma's order)
    _check_chain(chain)
    return chain, order[0]


def _read_streams(h: _Header, file_size: int) -> _Streams:
    pack_pos = 0
    pack_sizes: list[int] = []
    pack_crcs: list[int | None] = []
    coders: list[tuple[list[tuple[bytes, bytes]], int]] = []
    unpack_sizes: list[list[int]] = []
    folder_crcs: list[int | None] = []
    pid = h.byte()
    if pid == _PACK_INFO:
        pack_pos = h.number()
        n = h.count("packed streams", h.left())
        pack_crcs = [None] * n
        while (pid := h.byte()) != _END:
            if pid == _SIZE:
                pack_sizes = [h.number() for _ in range(n)]
            elif pid == _CRC:
                pack_crcs = h.digests(n)
            else:
                raise SevenZipUnsupported(f"Unknown property {pid:#04x} in the 7z pack info.")
        if len(pack_sizes) != n:
            raise SevenZipCorrupt("The 7z pack info has no sizes.")
        pid = h.byte()
    if pid == _UNPACK_INFO:
        h.expect(_FOLDER, "coders info")
        n_folders = h.count("folders", h.left())
        if h.byte() != 0:
            raise SevenZipUnsupported("The 7z folders are stored outside the header.")
        coders = [_read_folder(h) for _ in range(n_folders)]
        h.expect(_UNPACK_SIZE, "coders info")
        unpack_sizes = [[h.number() for _ in chain] for chain, _final in coders]  # one per coder output
        folder_crcs = [None] * n_folders
        while (pid := h.byte()) != _END:
            if pid == _CRC:
                folder_crcs = h.digests(n_folders)
            else:
                raise SevenZipUnsupported(f"Unknown property {pid:#04x} in the 7z coders info.")
        pid = h.byte()
    if len(coders) > len(pack_sizes):
        raise SevenZipCorrupt(f"The 7z header has {len(coders)} folders but {len(pack_sizes)} packed streams.")
    folders: list[_Folder] = []
    offset = _SIG_HEADER + pack_pos
    for i, (chain, final) in enumerate(coders):
        end = offset + pack_sizes[i]
        if end > file_size:
            raise SevenZipCorrupt(f"Packed stream {i} ends at byte {end}, past the end of the file ({file_size}).")
        if len(set(unpack_sizes[i])) != 1:
            # BCJ and Delta keep the size; a chain whose stages disagree is damaged
            raise SevenZipCorrupt(f"The 7z folder {i} declares stage sizes {unpack_sizes[i]}.")
        folders.append(_Folder(tuple(chain), offset, pack_sizes[i], pack_crcs[i], unpack_sizes[i][final],
                               folder_crcs[i]))
        offset = end
    # substreams: by default one per folder, with the folder's size and CRC
    counts = [1] * len(folders)
    substreams: list[tuple[int, int, int | None]] = [(i, f.unpack_size, f.crc) for i, f in enumerate(folders)]
    if pid == _SUBSTREAMS:
        substreams = _read_substreams(h, folders, counts)
        pid = h.byte()
    if pid != _END:
        raise SevenZipUnsupported(f"Unknown property {pid:#04x} in the 7z streams info.")
    return _Streams(folders, substreams)


def _read_substreams(h: _Header, folders: list[_Folder], counts: list[int]) -> list[tuple[int, int, int | None]]:
    pid = h.byte()
    if pid == _NUM_UNPACK:
        budget = h.left() + len(folders)  # every substream after a folder's first needs a size byte
        for i in range(len(folders)):
            counts[i] = h.count("substreams", budget)
            budget -= max(counts[i] - 1, 0)
        pid = h.byte()
    sizes: list[list[int]] = []
    for i, f in enumerate(folders):
        if counts[i] == 0:
            sizes.append([])
            continue
        parts = [h.number() for _ in range(counts[i] - 1)] if pid == _SIZE else []
        if len(parts) != counts[i] - 1:
            raise SevenZipCorrupt("The 7z substreams info has no sizes for a folder holding several files.")
        rest = f.unpack_size - sum(parts)
        if rest < 0:
            raise SevenZipCorrupt(f"The 7z substream sizes of folder {i} exceed the folder's size.")
        sizes.append([*parts, rest])
    if pid == _SIZE:
        pid = h.byte()
    # digests are listed for the substreams whose CRC the folder does not already give
    unknown = sum(c for i, c in enumerate(counts) if not (c == 1 and folders[i].crc is not None))
    digests: list[int | None] = [None] * unknown
    while pid != _END:
        if pid != _CRC:
            raise SevenZipUnsupported(f"Unknown property {pid:#04x} in the 7z substreams info.")
        digests = h.digests(unknown)
        pid = h.byte()
    out: list[tuple[int, int, int | None]] = []
    it = iter(digests)
    for i, f in enumerate(folders):
        known = counts[i] == 1 and f.crc is not None
        for size in sizes[i]:
            out.append((i, size, f.crc if known else next(it)))
    return out


def _read_files(h: _Header, n_streams: int, max_members: int) -> list[tuple[str, bool, bool, bool, int | None]]:
    """(name, has_stream, is_empty_file, is_anti, attributes) per file."""
    n = h.number()
    if n > max_members:
        raise LimitExceeded("limit.members", f"The 7z archive has {n} members, more than ScanLimits.max_members "
                            f"({max_members}).")
    if n > n_streams + 8 * h.left():  # every file without a stream needs a bit in the empty-stream vector
        raise SevenZipCorrupt(f"The 7z header declares {n} files, more than it can describe.")
    empty_stream = [False] * n
    empty_file: list[bool] = []
    anti: list[bool] = []
    names = [""] * n
    attrs: list[int | None] = [None] * n
    seen: set[int] = set()
    while (pid := h.byte()) != _END:
        size = h.count("property bytes", h.left())
        body = _Header(h.take(size))
        if pid in seen and pid != _DUMMY:
            raise SevenZipCorrupt(f"The 7z file property {pid:#04x} appears twice.")
        seen.add(pid)
        if pid == _EMPTY_STREAM:
            empty_stream = body.bits(n)
        elif pid in (_EMPTY_FILE, _ANTI):
            if _EMPTY_STREAM not in seen:
                raise SevenZipCorrupt("The 7z empty-file vector comes before the empty-stream vector.")
            bits = body.bits(sum(empty_stream))
            if pid == _EMPTY_FILE:
                empty_file = bits
            else:
                anti = bits
        elif pid == _NAME:
            if body.byte() != 0:
                raise SevenZipUnsupported("The 7z file names are stored outside the header.")
            raw = body.take(body.left())
            if len(raw) % 2:
                raise SevenZipCorrupt("The 7z file names are not UTF-16 (odd length).")
            parts = raw.decode("utf-16-le", "replace").split("\x00")
            if len(parts) != n + 1 or parts[-1]:
                raise SevenZipCorrupt(f"The 7z header has {len(parts) - 1} names for {n} files.")
            names = parts[:-1]
        elif pid == _ATTRIBUTES:
            flags = body.defined(n)
            if body.byte() != 0:
                raise SevenZipUnsupported("The 7z file attributes are stored outside the header.")
            values = iter(struct.unpack(f"<{sum(flags)}I", body.take(4 * sum(flags))))
            attrs = [next(values) if f else None for f in flags]
        elif pid not in _SKIPPABLE:
            raise SevenZipUnsupported(f"Unknown file property {pid:#04x} in the 7z header.")
    empty_file = empty_file or [False] * sum(empty_stream)
    anti = anti or [False] * sum(empty_stream)
    out = []
    k = 0
    for i in range(n):
        if empty_stream[i]:
            out.append((names[i], False, empty_file[k], anti[k], attrs[i]))
            k += 1
        else:
            out.append((names[i], True, False, False, attrs[i]))
    return out


class _FolderReader:
    """Decodes one folder's packed stream, never past the folder's declared unpack size."""

    def __init__(self, fh: IO[bytes], folder: _Folder, check_crc: bool) -> None:
        self._fh = fh
        self._folder = folder
        self._pos = folder.pack_offset
        self._left_in = folder.pack_size
        self._left_out = folder.unpack_size
        self._crc = 0
        self._pack_crc = 0
        self._check_crc = check_crc and folder.crc is not None
        self.bad_crc: str | None = None
        self._dec = _decoder(folder)

    def _raw(self, n: int) -> bytes:
        n = min(n, self._left_in)
        if n <= 0:
            return b""
        self._fh.seek(self._pos)
        data = self._fh.read(n)
        self._pos += len(data)
        self._left_in -= len(data)
        self._pack_crc = zlib.crc32(data, self._pack_crc)
        return data

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` only at the declared end. Damage raises `SevenZipCorrupt`."""
        n = min(n, self._left_out)
        if n <= 0:
            return b""
        try:
            out = self._decode(n)
        except (EOFError, OSError, ValueError, zlib.error, lzma.LZMAError, MemoryError) as exc:
            if isinstance(exc, SevenZipCorrupt):
                raise
            raise SevenZipCorrupt(f"The 7z packed data is damaged ({type(exc).__name__}: {exc}).") from None
        self._left_out -= len(out)
        if self._check_crc:
            self._crc = zlib.crc32(out, self._crc)
        if self._left_out == 0:
            self._finish()
        return out

    def _decode(self, n: int) -> bytes:
        dec = self._dec
        if dec is None:  # Copy
            data = self._raw(n)
            if not data:
                raise SevenZipCorrupt("The 7z packed stream ends before the declared size.")
            return data
        idle = 0
        while True:
            if dec.eof:
                raise SevenZipCorrupt("The 7z compressed stream ends before the declared size.")
            chunk = b""
            if dec.needs_input:
                chunk = self._raw(_CHUNK)
                if not chunk:
                    raise SevenZipCorrupt("The 7z packed stream ends before the declared size.")
            out: bytes = dec.decompress(chunk, n)
            if out:
                return out
            idle = 0 if chunk else idle + 1
            if idle > 64:  # the decoder neither consumes input nor produces output
                raise SevenZipCorrupt("The 7z compressed stream makes no progress.")

    def _finish(self) -> None:
        folder = self._folder
        if self._check_crc and self._crc != folder.crc:
            self.bad_crc = f"decoded data CRC {self._crc:08x}, recorded {folder.crc:08x}"
        if folder.pack_crc is not None:
            while self._raw(_CHUNK):  # bounded by the packed size, inside the file
                pass
            if self._pack_crc != folder.pack_crc:
                self.bad_crc = f"packed data CRC {self._pack_crc:08x}, recorded {folder.pack_crc:08x}"


class _Inflate:
    """zlib's raw-deflate decompressor with the bz2/lzma ``needs_input`` interface."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(-15)
        self._tail = b""

    @property
    def eof(self) -> bool:
        return self._z.eof

    @property
    def needs_input(self) -> bool:
        return not self._tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._z.decompress(self._tail + data, max_length)
        self._tail = self._z.unconsumed_tail
        return out


def _decoder(folder: _Folder) -> Any:
    *filters, (coder, props) = folder.chain
    if coder == _COPY:
        if folder.pack_size < folder.unpack_size:
            raise SevenZipCorrupt("A stored 7z folder is larger than its packed stream.")
        return None
    if coder == _DEFLATE:
        return _Inflate()
    if coder == _BZIP2:
        import bz2

        return bz2.BZ2Decompressor()
    # The dictionary is a buffer for back-references into the output, which can never reach past
    # the folder's size: clamping it keeps a hostile 4 GiB dictionary from being allocated.
    cap = max(folder.unpack_size, 4096)
    if coder == _LZMA:
        d = props[0]
        if d >= 9 * 5 * 5:
            raise SevenZipCorrupt(f"Invalid LZMA properties byte {d:#04x}.")
        lc, lp, pb = d % 9, (d // 9) % 5, d // 45
        dict_size = struct.unpack("<I", props[1:5])[0]
        spec: dict[str, int] = {"id": lzma.FILTER_LZMA1, "dict_size": min(max(dict_size, 4096), cap),
                                "lc": lc, "lp": lp, "pb": pb}
    else:
        p = props[0]
        dict_size = 0xFFFFFFFF if p == 40 else (2 | (p & 1)) << (p // 2 + 11)
        spec = {"id": lzma.FILTER_LZMA2, "dict_size": min(dict_size, cap)}
    chain = [{"id": _FILTERS[c][1], "dist": p[0] + 1} if c == _DELTA else {"id": _FILTERS[c][1]} for c, p in filters]
    try:
        return lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[*chain, spec])
    except (lzma.LZMAError, ValueError) as exc:
        raise SevenZipCorrupt(f"The 7z {_CODER_NAMES[coder]} coder properties are invalid ({exc}).") from None


class _MemberRaw(io.RawIOBase):
    """One member's bytes out of its folder, with its CRC checked at the end."""

    def __init__(self, folder: _FolderReader, member: SevenZipMember, failures: list[tuple[str, str]]) -> None:
        super().__init__()
        self._folder = folder
        self._member = member
        self._left = member.size
        self._crc = 0
        self._failures = failures

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._left <= 0:
            return 0
        data = self._folder.read(min(len(view), self._left))
        if not data:
            raise SevenZipCorrupt(f"The 7z data of {self._member.name!r} ends early.")
        n = len(data)
        view[:n] = data
        self._left -= n
        if self._member.crc is not None:
            self._crc = zlib.crc32(data, self._crc)
            if self._left == 0 and self._crc != self._member.crc:
                self._failures.append((self._member.name, f"CRC {self._crc:08x}, recorded {self._member.crc:08x}"))
        return n

    def finish(self) -> None:
        """Read what the consumer left unread (the next member follows in the same folder)."""
        while self._left > 0:
            if not self.readinto(bytearray(min(self._left, _CHUNK))):
                break


class SevenZipArchive:
    """A 7z archive opened from a seekable binary file: `members`, then `iter_members` for the bytes.

    Raises `SevenZipCorrupt` for damage, `SevenZipUnsupported` for features it does not decode
    (checked for every folder before any data is read) and `LimitExceeded` for too many members
    or a header larger than ``max_header_bytes``.
    """

    def __init__(self, fh: IO[bytes], *, max_members: int, max_header_bytes: int) -> None:
        self._fh = fh
        self.crc_failures: list[tuple[str, str]] = []
        file_size = fh.seek(0, 2)
        fh.seek(0)
        head = fh.read(_SIG_HEADER)
        if len(head) < _SIG_HEADER or head[:6] != SIGNATURE:
            raise SevenZipCorrupt("The file is too short for a 7z signature header.")
        if head[6] != 0:
            raise SevenZipUnsupported(f"7z format version {head[6]}.{head[7]} is not supported.")
        if zlib.crc32(head[12:32]) != struct.unpack("<I", head[8:12])[0]:
            raise SevenZipCorrupt("The 7z start header fails its CRC check.")
        offset, size, crc = _START.unpack(head[12:32])
        if size == 0:
            self.members: list[SevenZipMember] = []
            self.folders: list[_Folder] = []
            return
        start = _SIG_HEADER + offset
        if offset > file_size or size > file_size - start:
            raise SevenZipCorrupt(f"The 7z header ({size} bytes at {start}) lies outside the file "
                                  f"({file_size} bytes); the archive is truncated or damaged.")
        if size > max_header_bytes:
            raise LimitExceeded("limit.size", f"The 7z header is {size} bytes, more than "
                                "ScanLimits.max_header_bytes.")
        fh.seek(start)
        raw = fh.read(size)
        if len(raw) != size or zlib.crc32(raw) != crc:
            raise SevenZipCorrupt("The 7z header fails its CRC check.")
        h = _Header(raw)
        pid = h.byte()
        if pid == _ENCODED_HEADER:
            h = _Header(self._decode_header(h, file_size, max_header_bytes))
            pid = h.byte()
        if pid != _HEADER:
            raise SevenZipCorrupt(f"The 7z header starts with property {pid:#04x}, not a header.")
        self.folders, self.members = self._parse_header(h, file_size, max_members)

    def _decode_header(self, h: _Header, file_size: int, max_header_bytes: int) -> bytes:
        streams = _read_streams(h, file_size)
        if len(streams.folders) != 1:
            raise SevenZipUnsupported(f"The 7z encoded header has {len(streams.folders)} folders.")
        folder = streams.folders[0]
        if folder.unpack_size > max_header_bytes:
            raise LimitExceeded("limit.size", f"The 7z header expands to {folder.unpack_size} bytes, more than "
                                "ScanLimits.max_header_bytes.")
        reader = _FolderReader(self._fh, folder, check_crc=True)
        parts = []
        while data := reader.read(1 << 20):
            parts.append(data)
        if reader.bad_crc:
            raise SevenZipCorrupt(f"The 7z encoded header fails its CRC check ({reader.bad_crc}).")
        return b"".join(parts)

    def _parse_header(self, h: _Header, file_size: int, max_members: int) -> tuple[list[_Folder],
                                                                                     list[SevenZipMember]]:
        pid = h.byte()
        if pid == _ARCHIVE_PROPS:
            while h.byte() != _END:
                h.take(h.count("property bytes", h.left()))
            pid = h.byte()
        if pid == _ADDITIONAL:
            raise SevenZipUnsupported("The 7z header has additional streams.")
        streams = _Streams([], [])
        if pid == _MAIN:
            streams = _read_streams(h, file_size)
            pid = h.byte()
        if len(streams.substreams) > max_members:
            raise LimitExceeded("limit.members", f"The 7z archive has {len(streams.substreams)} members, more "
                                f"than ScanLimits.max_members ({max_members}).")
        files: list[tuple[str, bool, bool, bool, int | None]] = []
        if pid == _FILES:
            files = _read_files(h, len(streams.substreams), max_members)
            pid = h.byte()
        if pid != _END:
            raise SevenZipUnsupported(f"Unknown property {pid:#04x} in the 7z header.")
        with_data = sum(1 for f in files if f[1])
        if with_data != len(streams.substreams):
            raise SevenZipCorrupt(f"The 7z header lists {with_data} files with data but "
                                  f"{len(streams.substreams)} data streams.")
        members = []
        subs = iter(streams.substreams)
        for name, has_stream, empty_file, is_anti, attr in files:
            if has_stream:
                folder, size, crc = next(subs)
                members.append(SevenZipMember(name, size, False, False, attr, crc, folder))
            else:
                is_dir = not empty_file or (attr is not None and bool(attr & _ATTR_DIRECTORY))
                members.append(SevenZipMember(name, 0, is_dir, is_anti, attr, None, None))
        return streams.folders, members

    def folder_sizes(self, index: int) -> tuple[int, int]:
        """(packed, unpacked) size of folder ``index``."""
        f = self.folders[index]
        return f.pack_size, f.unpack_size

    def iter_members(self, skip_folders: frozenset[int] = frozenset()) -> Iterator[tuple[SevenZipMember,
                                                                                        IO[bytes] | None]]:
        """Each member with a raw stream of its bytes (None for entries without data or in ``skip_folders``).

        A stream must be used before the next member is requested; whatever is left unread is
        decoded and discarded then. Data CRC mismatches are appended to `crc_failures` as
        ``(member or folder, detail)``; damage raises `SevenZipCorrupt`.
        """
        # members of one folder are consecutive in the file list: the folder is decoded once, in order
        per_folder = [0] * len(self.folders)
        for m in self.members:
            if m.folder is not None:
                per_folder[m.folder] += 1
        current: tuple[int, _FolderReader] | None = None
        for member in self.members:
            if member.folder is None or member.folder in skip_folders:
                yield member, None
                continue
            if current is None or current[0] != member.folder:
                if current is not None:
                    self._end_folder(current)
                folder = self.folders[member.folder]
                # a lone member already carries the folder's CRC
                current = (member.folder, _FolderReader(self._fh, folder, check_crc=per_folder[member.folder] > 1))
            raw = _MemberRaw(current[1], member, self.crc_failures)
            yield member, io.BufferedReader(raw, _CHUNK)
            raw.finish()
        if current is not None:
            self._end_folder(current)

    def _end_folder(self, current: tuple[int, _FolderReader]) -> None:
        index, reader = current
        while reader.read(_CHUNK):  # trailing bytes no member claims (declared sizes are bounded)
            pass
        if reader.bad_crc:
            self.crc_failures.append((f"folder {index}", reader.bad_crc))
