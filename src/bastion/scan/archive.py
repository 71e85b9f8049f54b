"""Archives and compressed streams, recursively: zip, tar, 7z, gzip, bz2, xz, lzma, zlib, lz4.

Zip oddities (duplicate or colliding names, bad CRCs, local/central header disagreement, overlapping
members), path traversal, links and decompression bombs are findings.
"""

from __future__ import annotations

import collections
import io
import itertools
import posixpath
import stat
import struct
import zipfile
import zlib

from bastion.scan._streams import CountingRaw, ExpandingRaw, buffered, drain, is_real_file, spool
from bastion.scan.interface import FormatScanner, LimitExceeded, Severity

# tarfile, gzip, bz2 and lzma are imported by the scanners that need them (start-up time)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import tarfile
    from typing import IO, Any

    from bastion.scan._sevenzip import SevenZipArchive
    from bastion.scan.interface import ScanContext

__all__ = [
    "CompressedScanner",
    "SevenZipScanner",
    "TarScanner",
    "ZipScanner",
    "normalize_member_name",
    "unsafe_member_name",
]

_REM_ARCHIVE = (
    "Do not extract or load this archive with standard tools; rebuild it from trusted sources, "
    "or extract it by hand in an isolated location and scan the parts."
)
_REM_CORRUPT = "Obtain a fresh copy of the artifact from its producer and scan it again."


def unsafe_member_name(name: str) -> str | None:
    """Why an archive member name could write outside the extraction folder, or None."""
    if not name:
        return "empty name"
    norm = name.replace("\\", "/")
    if norm.startswith("/"):
        return "absolute path"
    if len(norm) >= 2 and norm[1] == ":" and norm[0].isalpha():
        return "drive-letter path"
    if ".." in norm.split("/"):
        return "parent-directory component '..'"
    if "\x00" in name:
        return "NUL byte in name"
    return None


def normalize_member_name(name: str) -> str:
    """The path an extractor writes member ``name`` to, relative to the target folder (case kept).

    The name ends at a NUL (C strings), is in Unicode NFC (macOS file systems store NFD), ``\\`` is a
    separator (Windows, Info-ZIP ``unzip``), a drive letter and leading separators are dropped,
    ``.`` and empty segments vanish (``extractall``), ``..`` cancels the segment before it, and
    trailing dots and spaces of a segment are dropped (Windows).
    """
    name = name.split("\x00", 1)[0]
    if not name.isascii():
        import unicodedata

        name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/")
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        name = name[2:]
    parts: list[str] = []
    for segment in name.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            else:
                parts.append(segment)
            continue
        parts.append(segment.rstrip(". ") or segment)
    return "/".join(parts)


# What a member's content was scanned as, when that content is plain data (no loader runs code from
# it); anything else, including a member that was not read, may carry code.
_DATA_CONTENT = frozenset({"directory", "empty", "unknown", "numpy", "safetensors"})


class _MemberNames:
    """The member names of one archive, to report names that extract or load as the same file.

    ``add`` each member once it has been scanned (with the format its content was scanned as);
    ``report`` groups the names by their normalized, case-folded form in one pass. Exact
    repeats are ``archive.duplicate-member`` (reported by the scanners); a group of different
    spellings is one ``archive.colliding-members`` finding.
    """

    def __init__(self, names: list[str] | None = None) -> None:
        # name -> whether a copy may carry code (None: declared, not read yet)
        self._code: dict[str, bool | None] = dict.fromkeys(names or ())

    def add(self, name: str, content: str | None) -> None:
        """Record that ``name`` was read as ``content`` (a format label; None when it was not read)."""
        code = content is None or content not in _DATA_CONTENT
        self._code[name] = bool(self._code.get(name)) or code

    def report(self, ctx: ScanContext, kind: str, *, extracted: bool = False) -> None:
        """Add one finding per group of names that name the same file (``extracted``: read from disk)."""
        groups: dict[str, list[tuple[str, str]]] = {}
        for name in self._code:
            path = normalize_member_name(name)
            if not path:
                continue  # the extraction folder itself
            folded = path.casefold()
            if not folded.isascii():
                import unicodedata

                folded = unicodedata.normalize("NFC", folded)
            groups.setdefault(folded, []).append((name, path))
        for members in groups.values():
            if len(members) > 1:
                self._finding(ctx, kind, members, extracted=extracted)

    def _finding(self, ctx: ScanContext, kind: str, members: list[tuple[str, str]], *, extracted: bool) -> None:
        names = [n for n, _ in members]
        case_only = len({p for _, p in members}) == len(members)
        code = [n for n in names if self._code[n] is not False]
        shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        if not case_only:
            severity = Severity.HIGH
            why = ("they are the same path once '\\' is read as '/', '.' and empty segments, trailing dots "
                   "and spaces are dropped and Unicode is normalized: extracting the archive (Windows, "
                   "Info-ZIP unzip, Python's extractall, macOS) writes one over the other, and a loader "
                   "that normalizes paths reads another copy than a reader that does not.")
        else:
            severity = Severity.HIGH if code or extracted else Severity.MEDIUM
            why = ("they differ only in letter case: on a case-insensitive file system (the Windows and "
                   "macOS default) extracting the archive keeps one of them under the other's name.")
            if code:
                why += f" {code[0]!r} may carry code (it is not plain data)."
            else:
                why += " Every copy is plain data, so no loader runs code from the swap."
        if extracted:
            why += " The members were read from an extraction to disk, so the scanner may have seen only one."
        ctx.add("archive.colliding-members", severity, f"{kind} members {shown}",
                f"The {kind} member names {shown} name the same file: {why}", _REM_ARCHIVE)


def _member_findings(ctx: ScanContext, name: str, kind: str) -> bool:
    why = unsafe_member_name(name)
    if why is None:
        return False
    ctx.add(
        "archive.path-traversal",
        Severity.HIGH,
        f"{kind} member {name!r}",
        f"The {kind} member name {name!r} has a {why}; extracting it writes outside the target folder "
        f"({kind}-slip).",
        _REM_ARCHIVE,
    )
    return True


# -- zip ----------------------------------------------------------------------------------------

_LOCAL = struct.Struct("<4sHHHHHIIIHH")


class ZipScanner(FormatScanner):
    """Zip archives, including PyTorch zip checkpoints, Keras ``.keras`` files and ``.npz``."""

    name = "zip"

    def sniff(self, head: bytes) -> bool:
        return head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        from bastion.scan import keras as keras_scan
        from bastion.scan import torch as torch_scan

        if not is_real_file(stream):
            stream = spool(stream, ctx)
        try:
            zf = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            ctx.add("archive.corrupt", Severity.HIGH, "zip", f"The zip archive cannot be read ({exc}); "
                    "loaders that parse it differently may still find content in it.", _REM_CORRUPT)
            return
        with zf:
            infos = zf.infolist()
            limit = ctx.limits.max_members
            if len(infos) > limit:
                ctx.add("limit.members", Severity.HIGH, f"{len(infos)} members",
                        f"The zip has {len(infos)} members, more than ScanLimits.max_members ({limit}); only "
                        "the first ones were analysed.", _REM_ARCHIVE)
                infos = infos[:limit]
            prefix = self._structure(stream, infos, ctx)
            self._offsets(zf, stream, ctx)
            names = [i.filename for i in infos]
            layout = torch_scan.zip_layout(names)
            if layout is not None:
                ctx.label = "pytorch"
                torch_scan.zip_findings(names, layout, ctx)
            elif keras_scan.is_keras_zip(names):
                ctx.label = "keras"
            elif names and all(n.endswith(".npy") for n in names):
                ctx.label = "npz"
            member_flags: frozenset[str] | None = None
            if layout is not None:
                member_flags = ctx.flags | {"torch"}
                if any(n.startswith(f"{layout}/code/") for n in names):
                    member_flags = member_flags | {"torchscript"}
            seen = _MemberNames(names)
            try:
                for info in infos:
                    ctx.check_time()
                    if info.is_dir():
                        seen.add(info.filename, "directory")
                        continue
                    if info.flag_bits & 0x1:
                        ctx.add("archive.encrypted", Severity.HIGH, f"zip member {info.filename!r}",
                                "The member is encrypted, so its content cannot be checked.", _REM_ARCHIVE)
                        seen.add(info.filename, None)
                        continue
                    if layout is not None and torch_scan.is_tensor_blob(info.filename, layout):
                        seen.add(info.filename, None)
                        continue  # raw tensor bytes: never parsed by a loader as code
                    if self._declared_bomb(info, ctx):
                        seen.add(info.filename, None)
                        continue
                    seen.add(info.filename, self._member(zf, info, ctx, member_flags, keras=ctx.label == "keras"))
            finally:
                seen.report(ctx, "zip")
        if prefix:
            # whatever precedes the members is content too: a loader that reads the file from its start (a
            # streaming unzip, a pickle loader, a reader that does not shift offsets) sees it
            ctx.scan_nested(buffered(_Window(stream, 0, prefix)), "(prepended)", size=prefix)

    def _offsets(self, zf: zipfile.ZipFile, stream: IO[bytes], ctx: ScanContext) -> None:
        """Central-directory offsets that only make sense counted from a later start (a zip appended to
        other bytes without adjusting them): Python's zipfile shifts every offset by the difference,
        torch's reader (miniz) and others read them from the start of the file, so the two see
        different members (a whole second archive can sit in front with the same names)."""
        try:
            endrec = zipfile._EndRecData(stream)  # type: ignore[attr-defined]
            shift = int(zf.start_dir) - int(endrec[zipfile._ECD_OFFSET])  # type: ignore[attr-defined]
        except (AttributeError, OSError, TypeError, ValueError, IndexError, zipfile.BadZipFile):
            return
        if shift:
            ctx.add("archive.offset-mismatch", Severity.HIGH, "central directory",
                    f"The central directory's offsets are off by {shift} bytes from where its entries are: "
                    "Python's zipfile shifts them, other readers (torch.load's miniz) take them as written and "
                    "read other bytes as the members.", _REM_ARCHIVE)

    def _declared_bomb(self, info: zipfile.ZipInfo, ctx: ScanContext) -> bool:
        """Refuse a member whose own header promises a bomb, without inflating it."""
        limits = ctx.limits
        size, packed = info.file_size, max(info.compress_size, 1)
        if size > limits.max_expanded_bytes or (size > limits.ratio_floor_bytes and size / packed > limits.max_ratio):
            ctx.add("limit.ratio" if size <= limits.max_expanded_bytes else "limit.size", Severity.HIGH,
                    f"zip member {info.filename!r}",
                    f"The member declares {size} bytes from {packed} compressed (ratio {size / packed:.0f}); "
                    "treated as a decompression bomb and not expanded.",
                    "Reject the archive, or scan it with larger ScanLimits if the content is expected.")
            return True
        return False

    def _member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, ctx: ScanContext,
                flags: frozenset[str] | None, *, keras: bool) -> str | None:
        """Scan one member; return the format its content was scanned as (None: not read)."""
        from bastion.scan import keras as keras_scan

        try:
            raw = zf.open(info)
        except (zipfile.BadZipFile, NotImplementedError, OSError, ValueError, RuntimeError) as exc:
            ctx.add("archive.corrupt", Severity.HIGH, f"zip member {info.filename!r}",
                    f"The member cannot be opened ({exc}); its content was not checked.", _REM_CORRUPT)
            return None
        limited = buffered(ExpandingRaw(raw, ctx, max(info.compress_size, 1)))
        content: str | None = None
        try:
            if keras and info.filename in ("config.json", "metadata.json"):
                child = ctx.child(info.filename)
                content = "keras-config"  # read for the code a Keras config can name
                keras_scan.scan_config_stream(limited, child)
            else:
                content = ctx.scan_nested(limited, info.filename, flags=flags, size=info.file_size)
            drain(limited, ctx)
        except zipfile.BadZipFile as exc:
            ctx.add("archive.bad-crc", Severity.HIGH, f"zip member {info.filename!r}",
                    f"The member fails its integrity check ({exc}); the archive was altered after it was "
                    "written.", _REM_CORRUPT)
        except (zlib.error, EOFError, OSError) as exc:
            ctx.add("archive.corrupt", Severity.HIGH, f"zip member {info.filename!r}",
                    f"The member's compressed data is damaged ({exc}).", _REM_CORRUPT)
        finally:
            raw.close()
        return content

    def _structure(self, stream: IO[bytes], infos: list[zipfile.ZipInfo], ctx: ScanContext) -> int:
        """Name, link and layout findings; returns how many bytes precede the first member."""
        counts = collections.Counter(i.filename for i in infos)
        for name, n in counts.items():
            if n > 1:
                ctx.add("archive.duplicate-member", Severity.HIGH, f"zip member {name!r}",
                        f"The name {name!r} appears {n} times; a loader may read a different copy than the "
                        "one a scanner or a reviewer sees.", _REM_ARCHIVE)
        ranges: list[tuple[int, int, str]] = []
        for info in infos:
            _member_findings(ctx, info.filename, "zip")
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_ISLNK(mode):
                ctx.add("archive.link", Severity.HIGH, f"zip member {info.filename!r}",
                        "The member is a symbolic link; extracting it can point later writes outside the "
                        "target folder.", _REM_ARCHIVE)
            end = self._local_header(stream, info, ctx)
            if end is not None:
                ranges.append((info.header_offset, end, info.filename))
        ranges.sort()
        for (_s1, e1, n1), (s2, _e2, n2) in itertools.pairwise(ranges):
            if s2 < e1:
                ctx.add("archive.overlapping-members", Severity.HIGH, f"zip members {n1!r}, {n2!r}",
                        "Two members share the same bytes (a zip-bomb technique, or a member hidden inside "
                        "another).", _REM_ARCHIVE, offset=s2)
        if ranges and ranges[0][0] > 0:
            ctx.add("archive.prepended-data", Severity.MEDIUM, "data before first member",
                    f"{ranges[0][0]} bytes precede the first zip member; the file is also something else "
                    "(a polyglot), and another loader may read that part (it is scanned as '(prepended)').",
                    _REM_ARCHIVE, offset=0)
            return ranges[0][0]
        return 0

    def _local_header(self, stream: IO[bytes], info: zipfile.ZipInfo, ctx: ScanContext) -> int | None:
        where = f"zip member {info.filename!r}"
        try:
            stream.seek(info.header_offset)
            raw = stream.read(_LOCAL.size)
        except (OSError, ValueError):
            raw = b""
        if len(raw) != _LOCAL.size or raw[:4] != b"PK\x03\x04":
            ctx.add("archive.header-mismatch", Severity.HIGH, where,
                    "The central directory points at a place with no local file header.", _REM_CORRUPT,
                    offset=info.header_offset)
            return None
        (_sig, _ver, flags, method, _t, _d, crc, csize, usize, nlen, elen) = _LOCAL.unpack(raw)
        name_raw = stream.read(nlen)
        encoding = "utf-8" if flags & 0x800 else "cp437"
        local_name = name_raw.decode(encoding, "replace")
        problems = []
        if local_name != info.orig_filename:
            problems.append(f"name {local_name!r} vs {info.orig_filename!r}")
        if method != info.compress_type:
            problems.append(f"compression {method} vs {info.compress_type}")
        if not flags & 0x08:
            if crc != info.CRC:
                problems.append(f"CRC {crc:08x} vs {info.CRC:08x}")
            if csize != 0xFFFFFFFF and csize != info.compress_size:
                problems.append(f"compressed size {csize} vs {info.compress_size}")
            if usize != 0xFFFFFFFF and usize != info.file_size:
                problems.append(f"size {usize} vs {info.file_size}")
        if problems:
            ctx.add("archive.header-mismatch", Severity.HIGH, where,
                    "The local and central headers disagree (" + "; ".join(problems) + "); tools that read "
                    "different headers see different files.", _REM_CORRUPT, offset=info.header_offset)
        return int(info.header_offset + _LOCAL.size + nlen + elen + info.compress_size)


class _Window(io.RawIOBase):
    """Bytes ``[start, end)`` of a seekable stream, read without disturbing anyone else's position."""

    def __init__(self, inner: IO[bytes], start: int, end: int) -> None:
        self._inner, self._pos, self._end = inner, start, end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._end - self._pos)
        if n <= 0:
            return 0
        self._inner.seek(self._pos)
        data = self._inner.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


# -- tar ----------------------------------------------------------------------------------------


_TORCH_TAR_MEMBERS = frozenset({"sys_info", "storages", "tensors", "pickle"})


class TarScanner(FormatScanner):
    """Tar archives (plain; compressed ones arrive through `CompressedScanner`), incl. legacy torch tar."""

    name = "tar"

    def sniff(self, head: bytes) -> bool:
        return len(head) >= 262 and head[257:262] == b"ustar"

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        import tarfile

        seen: collections.Counter[str] = collections.Counter()
        count = 0
        try:
            tf = tarfile.open(fileobj=stream, mode="r|")
        except tarfile.TarError as exc:
            ctx.add("archive.corrupt", Severity.HIGH, "tar", f"The tar archive cannot be read ({exc}).",
                    _REM_CORRUPT)
            return
        torch_tar = False
        names = _MemberNames()
        try:
            for member in tf:
                ctx.check_time()
                count += 1
                if count > ctx.limits.max_members:
                    ctx.add("limit.members", Severity.HIGH, f"more than {ctx.limits.max_members} members",
                            "The tar has more members than ScanLimits.max_members; the rest was not analysed.",
                            _REM_ARCHIVE)
                    break
                name = member.name
                seen[name] += 1
                if seen[name] == 2:
                    ctx.add("archive.duplicate-member", Severity.HIGH, f"tar member {name!r}",
                            f"The name {name!r} appears more than once; extraction keeps the last copy, which "
                            "may not be the one that was reviewed.", _REM_ARCHIVE)
                _member_findings(ctx, name, "tar")
                if name in _TORCH_TAR_MEMBERS and member.isfile():
                    # torch.load reads a tar with these members as a legacy checkpoint (sys_info is optional)
                    torch_tar = True
                names.add(name, self._member(tf, member, ctx, torch_tar=torch_tar))
        except tarfile.TarError as exc:
            ctx.add("archive.corrupt", Severity.HIGH, "tar", f"The tar archive is damaged after {count} "
                    f"members ({exc}).", _REM_CORRUPT)
        finally:
            tf.close()
            names.report(ctx, "tar")
        if torch_tar:
            ctx.label = "pytorch-legacy-tar"

    def _member(self, tf: tarfile.TarFile, member: tarfile.TarInfo, ctx: ScanContext, *,
                torch_tar: bool) -> str | None:
        """Scan one member; return the format its content was scanned as (None: not read)."""
        name = member.name
        if member.issym() or member.islnk():
            self._link(member, ctx)
            return None
        if member.ischr() or member.isblk() or member.isfifo():
            ctx.add("archive.special-file", Severity.HIGH, f"tar member {name!r}",
                    "The member is a device or FIFO; extracting it creates a special file.", _REM_ARCHIVE)
            return None
        if member.isdir():
            return "directory"
        if not member.isfile():
            return None
        handle = tf.extractfile(member)
        if handle is None:
            return None
        flags = ctx.flags | {"torch"} if torch_tar else None
        if torch_tar and name in ("storages", "tensors"):
            from bastion.scan import torch as torch_scan

            torch_scan.scan_legacy_tar_data(buffered(ExpandingRaw(handle, ctx, None)), ctx.child(name, flags=flags),
                                            name)
            return "pytorch-legacy-tar"
        return ctx.scan_nested(buffered(ExpandingRaw(handle, ctx, None)), name, flags=flags, size=member.size)

    def _link(self, member: tarfile.TarInfo, ctx: ScanContext) -> None:
        target = member.linkname
        base = posixpath.dirname(member.name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        escapes = target.startswith("/") or resolved.startswith("..")
        kind = "symbolic" if member.issym() else "hard"
        ctx.add("archive.link", Severity.HIGH if escapes else Severity.MEDIUM, f"tar member {member.name!r}",
                f"The member is a {kind} link to {target!r}"
                + (", which points outside the extraction folder (tar-slip)." if escapes else "."),
                _REM_ARCHIVE)


# -- single-stream compression ----------------------------------------------------------------------


def _lz4_frames(stream: IO[bytes]) -> Any:
    try:
        import lz4.frame  # optional, C speed
    except ImportError:
        return _Lz4Frames(stream)
    return _Lz4Native(lz4.frame.LZ4FrameFile(stream, "rb"))


class _Lz4Native:
    """The ``lz4`` package's reader, with its RuntimeError for damaged frames reported as OSError."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self._inner.read(n)
        except RuntimeError as exc:  # LZ4F_decompress failed ...
            raise OSError(f"lz4 data is damaged: {exc}") from None
        return data


class _Lz4Frames:
    """Pure-Python LZ4 frame decoder (joblib's ``compress='lz4'``) for when the ``lz4`` package is absent."""

    _WINDOW = 1 << 16

    def __init__(self, inner: IO[bytes]) -> None:
        self._in = inner
        self._history = bytearray()
        self._pending = b""
        self._in_frame = False
        self._block_checksum = False
        self._content_checksum = False
        self._eof = False

    def _need(self, n: int) -> bytes:
        data = self._in.read(n)
        if len(data) != n:
            raise EOFError("lz4 stream is truncated")
        return data

    def _frame_header(self) -> bool:
        magic = self._in.read(4)
        if not magic:
            return False
        if len(magic) != 4:
            raise EOFError("lz4 stream is truncated")
        value = struct.unpack("<I", magic)[0]
        if 0x184D2A50 <= value <= 0x184D2A5F:  # skippable frame
            size = struct.unpack("<I", self._need(4))[0]
            self._need(size)
            return self._frame_header()
        if value != 0x184D2204:
            raise OSError("not an lz4 frame")
        flg, _bd = self._need(2)
        if flg >> 6 != 1:
            raise OSError("unsupported lz4 frame version")
        if flg & 0x08:
            self._need(8)
        if flg & 0x01:
            self._need(4)
        self._need(1)  # header checksum
        self._block_checksum = bool(flg & 0x10)
        self._content_checksum = bool(flg & 0x04)
        self._history = bytearray()
        return True

    def _next_block(self) -> bytes:
        while True:
            if not self._in_frame:
                if not self._frame_header():
                    self._eof = True
                    return b""
                self._in_frame = True
            size = struct.unpack("<I", self._need(4))[0]
            if size == 0:
                if self._content_checksum:
                    self._need(4)
                self._in_frame = False
                continue
            raw = self._need(size & 0x7FFFFFFF)
            if self._block_checksum:
                self._need(4)
            out = raw if size & 0x80000000 else self._decode(raw)
            self._history += out
            del self._history[: -self._WINDOW]
            return out

    def _decode(self, src: bytes) -> bytes:
        out = bytearray(self._history)
        start = len(out)
        i, n = 0, len(src)
        while i < n:
            token = src[i]
            i += 1
            lit = token >> 4
            if lit == 15:
                while True:
                    b = src[i]
                    i += 1
                    lit += b
                    if b != 255:
                        break
            out += src[i : i + lit]
            i += lit
            if i >= n:
                break
            offset = src[i] | src[i + 1] << 8
            i += 2
            if offset == 0 or offset > len(out):
                raise OSError("lz4 match offset outside the window")
            length = (token & 15) + 4
            if token & 15 == 15:
                while True:
                    b = src[i]
                    i += 1
                    length += b
                    if b != 255:
                        break
            pos = len(out) - offset
            if offset >= length:
                out += out[pos : pos + length]
            else:
                for k in range(length):
                    out.append(out[pos + k])
        return bytes(out[start:])

    def read(self, n: int = -1) -> bytes:
        while not self._pending and not self._eof:
            try:
                self._pending = self._next_block()
            except IndexError:
                raise OSError("lz4 block is truncated") from None
        size = len(self._pending) if n < 0 else n
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


class _ZlibRaw:
    """Forward-only zlib decompression (the format joblib writes for ``compress=('zlib', n)``)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._z = zlib.decompressobj()
        self._pending = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 20
        while not self._pending and not self._eof:
            chunk = self._inner.read(1 << 16)
            if not chunk:
                self._pending = self._z.flush()
                self._eof = True
                if not self._z.eof:
                    raise EOFError("zlib stream ended before its end marker")
                break
            self._pending = self._z.decompress(chunk, 1 << 20)
            while self._z.unconsumed_tail and len(self._pending) < (1 << 20):
                self._pending += self._z.decompress(self._z.unconsumed_tail, 1 << 20)
            if self._z.eof:
                self._eof = True
        out, self._pending = self._pending[:n], self._pending[n:]
        if not self._pending and self._z.unconsumed_tail and not self._eof:
            self._pending = self._z.decompress(self._z.unconsumed_tail, 1 << 20)
        return out


class CompressedScanner(FormatScanner):
    """gzip, bz2, xz, lzma-alone, zlib and lz4 streams: decompress on the fly and scan the content."""

    name = "compressed"
    formats = ("gzip", "bz2", "xz", "lzma", "zlib", "lz4")

    def sniff(self, head: bytes) -> bool:
        from bastion.scan.detect import detect_format

        return detect_format(head) in self.formats

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        import lzma

        from bastion.scan._streams import read_head
        from bastion.scan.detect import detect_format

        head, stream = read_head(stream, 16)
        kind = detect_format(head)
        counter = CountingRaw(stream)
        source = buffered(counter)
        opened: Any
        if kind == "gzip":
            import gzip

            opened = gzip.GzipFile(fileobj=source, mode="rb")
        elif kind == "bz2":
            import bz2

            opened = bz2.BZ2File(source, "rb")
        elif kind == "xz":
            opened = lzma.LZMAFile(source, "rb", format=lzma.FORMAT_XZ)
        elif kind == "lzma":
            opened = lzma.LZMAFile(source, "rb", format=lzma.FORMAT_ALONE)
        elif kind == "zlib":
            opened = _ZlibRaw(source)
        elif kind == "lz4":
            opened = _lz4_frames(source)
        else:  # pragma: no cover - sniff guarantees one of the kinds
            raise RuntimeError(f"unknown compression {kind}")
        inner = buffered(ExpandingRaw(opened, ctx, counter))
        try:
            label = ctx.scan_nested(inner, f"({kind})")
            drain(inner, ctx)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            ctx.add("archive.corrupt", Severity.HIGH, f"{kind} stream",
                    f"The {kind} data is damaged ({exc}); the part before the damage was analysed.",
                    _REM_CORRUPT)
            label = "damaged"
        ctx.label = f"{kind}+{label}"


# -- 7z ---------------------------------------------------------------------------------------------


class SevenZipScanner(FormatScanner):
    """7z archives: read by the built-in reader (`bastion.scan._sevenzip`), with ``py7zr`` as the fallback.

    The built-in reader decodes Copy, LZMA, LZMA2, Deflate and BZip2 folders, and BCJ or Delta filters in
    front of LZMA2; archives using anything else (PPMd, BCJ2, filters before LZMA1/Deflate, ...) go to the
    optional ``py7zr`` package, and without it are reported as unscannable (HIGH), never passed.
    """

    name = "7z"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"7z\xbc\xaf\x27\x1c")

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        from bastion.scan import _sevenzip

        if not is_real_file(stream):
            stream = spool(stream, ctx)
        try:
            archive = _sevenzip.SevenZipArchive(stream, max_members=ctx.limits.max_members,
                                                max_header_bytes=ctx.limits.max_header_bytes)
        except _sevenzip.SevenZipUnsupported as exc:
            if exc.encrypted:
                ctx.add("archive.encrypted", Severity.HIGH, "7z archive",
                        f"{exc} Its content cannot be checked.", _REM_ARCHIVE)
                return
            self._scan_py7zr(stream, ctx, str(exc))
            return
        except _sevenzip.SevenZipCorrupt as exc:
            ctx.add("archive.corrupt", Severity.HIGH, "7z archive", f"The 7z archive cannot be read ({exc}).",
                    _REM_CORRUPT)
            return
        self._scan_builtin(archive, ctx)

    def _scan_builtin(self, archive: SevenZipArchive, ctx: ScanContext) -> None:
        from bastion.scan import _sevenzip

        members = archive.members
        self._names(ctx, [m.name for m in members])
        total = sum(archive.folder_sizes(i)[1] for i in range(len(archive.folders)))
        if ctx.expanded[0] + total > ctx.limits.max_expanded_bytes:
            raise LimitExceeded("limit.size", f"The 7z archive expands to {total} bytes, more than "
                                "ScanLimits.max_expanded_bytes.")
        limits = ctx.limits
        bombs: set[int] = set()
        for i in range(len(archive.folders)):
            packed, size = archive.folder_sizes(i)
            packed = max(packed, 1)
            if size > limits.ratio_floor_bytes and size / packed > limits.max_ratio:
                bombs.add(i)
                names = [m.name for m in members if m.folder == i]
                ctx.add("limit.ratio", Severity.HIGH, f"7z members {names[:5]!r}",
                        f"The members declare {size} bytes from {packed} compressed (ratio {size / packed:.0f}); "
                        "treated as a decompression bomb and not expanded.",
                        "Reject the archive, or scan it with larger ScanLimits if the content is expected.")
        seen = _MemberNames([m.name for m in members])
        try:
            for member, raw in archive.iter_members(frozenset(bombs)):
                ctx.check_time()
                if raw is None:
                    seen.add(member.name, "directory" if member.is_dir else "empty" if member.folder is None else None)
                    continue
                if member.is_link:
                    ctx.add("archive.link", Severity.HIGH, f"7z member {member.name!r}",
                            "The member is a symbolic link; extracting it can point later writes outside the "
                            "target folder.", _REM_ARCHIVE)
                packed = archive.folder_sizes(member.folder)[0] if member.folder is not None else 1
                limited = buffered(ExpandingRaw(raw, ctx, max(packed, 1)))
                content = ctx.scan_nested(limited, member.name, size=member.size)
                seen.add(member.name, None if member.is_link else content)  # a link's target is elsewhere
                drain(limited, ctx)
        except _sevenzip.SevenZipCorrupt as exc:
            ctx.add("archive.corrupt", Severity.HIGH, "7z archive",
                    f"The 7z archive's data is damaged ({exc}); members before the damage were analysed.",
                    _REM_CORRUPT)
        finally:
            seen.report(ctx, "7z")
            for where, detail in archive.crc_failures:
                ctx.add("archive.bad-crc", Severity.HIGH, f"7z member {where!r}",
                        f"The data fails its integrity check ({detail}); the archive was altered after it "
                        "was written.", _REM_CORRUPT)

    def _names(self, ctx: ScanContext, names: list[str]) -> None:
        for name, n in collections.Counter(names).items():
            if n > 1:
                ctx.add("archive.duplicate-member", Severity.HIGH, f"7z member {name!r}",
                        f"The name {name!r} appears {n} times; extraction keeps one copy, which may not be "
                        "the one that was reviewed.", _REM_ARCHIVE)
        for name in names:
            _member_findings(ctx, name, "7z")

    def _scan_py7zr(self, stream: IO[bytes], ctx: ScanContext, why: str) -> None:
        try:
            import py7zr
        except ImportError:
            ctx.add("archive.unsupported", Severity.HIGH, "7z archive",
                    f"{why} The optional 'py7zr' package, which could read it, is not installed, so its "
                    "members were not analysed.", "Install 'py7zr' next to Bastion, or repack as zip/tar.")
            return
        import tempfile

        try:
            packed = max(stream.seek(0, 2), 1)
            stream.seek(0)
            with py7zr.SevenZipFile(stream, "r") as archive:
                infos = archive.list()
                if len(infos) > ctx.limits.max_members:
                    raise LimitExceeded("limit.members", "The 7z archive has more members than "
                                        "ScanLimits.max_members.")
                total = sum(getattr(i, "uncompressed", 0) or 0 for i in infos)
                if ctx.expanded[0] + total > ctx.limits.max_expanded_bytes:
                    raise LimitExceeded("limit.size", f"The 7z archive expands to {total} bytes, more than "
                                        "ScanLimits.max_expanded_bytes.")
                # py7zr extracts everything to disk in one call (no ExpandingRaw, no time check inside):
                # the ratio limit the built-in reader applies per folder is applied to the whole archive
                limits = ctx.limits
                if total > limits.ratio_floor_bytes and total / packed > limits.max_ratio:
                    ctx.add("limit.ratio", Severity.HIGH, "7z archive",
                            f"The members declare {total} bytes from {packed} compressed (ratio "
                            f"{total / packed:.0f}); treated as a decompression bomb and not expanded.",
                            "Reject the archive, or scan it with larger ScanLimits if the content is expected.")
                    return
                self._names(ctx, [i.filename for i in infos])
                # py7zr writes the members to disk and the scan reads them back: of names that collide
                # there, the scanner itself saw one copy
                _MemberNames([i.filename for i in infos]).report(ctx, "7z", extracted=True)
                with tempfile.TemporaryDirectory(prefix="bastion-7z-") as tmp:
                    archive.reset()
                    safe = [i.filename for i in infos
                            if not i.is_directory and unsafe_member_name(i.filename) is None]
                    archive.extract(path=tmp, targets=safe)
                    from pathlib import Path

                    for name in safe:
                        path = Path(tmp) / name
                        if path.is_file() and not path.is_symlink():
                            with path.open("rb") as fh:
                                ctx.scan_nested(fh, name, size=path.stat().st_size)
        except LimitExceeded:
            raise
        except Exception as exc:
            ctx.add("archive.corrupt", Severity.HIGH, "7z archive", f"The 7z archive cannot be read ({exc}).",
                    _REM_CORRUPT)
