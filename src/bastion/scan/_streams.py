"""Stream plumbing for the scanner: put-back heads, byte counting, expansion limits, spooling.

Everything streams; nothing reads a whole large member into memory.
"""

from __future__ import annotations

import io

from bastion.scan.interface import LimitExceeded

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO, Any

    from bastion.scan.interface import ScanContext

__all__ = ["CountingRaw", "ExpandingRaw", "HeadRaw", "buffered", "drain", "is_real_file", "read_head", "spool"]

_BUF = 1 << 16


class HeadRaw(io.RawIOBase):
    """Raw stream that yields ``head`` first, then the rest of ``inner``."""

    def __init__(self, head: bytes, inner: IO[bytes]) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head.nbytes:
            n = min(len(view), self._head.nbytes)
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._inner.read(len(view))
        n = len(data)
        view[:n] = data
        return n


class CountingRaw(io.RawIOBase):
    """Counts the bytes read through it (the compressed side of a decompressor)."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        n = len(data)
        view[:n] = data
        self.count += n
        return n


class ExpandingRaw(io.RawIOBase):
    """The expanded side of a decompressor or archive member, with size and ratio limits."""

    def __init__(self, inner: IO[bytes], ctx: ScanContext, compressed: CountingRaw | int | None) -> None:
        super().__init__()
        self._inner = inner
        self._ctx = ctx
        self._compressed = compressed
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        n = len(data)
        view[:n] = data
        self.count += n
        self._ctx.expanded[0] += n
        limits = self._ctx.limits
        if self._ctx.expanded[0] > limits.max_expanded_bytes:
            raise LimitExceeded(
                "limit.size",
                f"Decompressed content exceeds {limits.max_expanded_bytes} bytes in total "
                "(ScanLimits.max_expanded_bytes); a decompression bomb or a very large archive.",
            )
        if self.count > limits.ratio_floor_bytes:
            packed = self._compressed.count if isinstance(self._compressed, CountingRaw) else self._compressed
            if packed and self.count / packed > limits.max_ratio:
                raise LimitExceeded(
                    "limit.ratio",
                    f"Content expands more than {limits.max_ratio:g} times ({self.count} bytes from {packed}); "
                    "treated as a decompression bomb (ScanLimits.max_ratio).",
                )
        return n


def buffered(raw: io.RawIOBase) -> io.BufferedReader:
    """Wrap a raw stream for fast small reads, ``readline`` and ``peek``."""
    return io.BufferedReader(raw, _BUF)


def read_head(stream: IO[bytes], n: int) -> tuple[bytes, IO[bytes]]:
    """Read up to ``n`` leading bytes and return them with a stream that still starts at 0."""
    if stream.seekable():
        try:
            start = stream.tell()
            head = stream.read(n)
            stream.seek(start)
            if start == 0:
                return head, stream
        except OSError:
            pass
    chunks = []
    got = 0
    while got < n:
        data = stream.read(n - got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    head = b"".join(chunks)
    return head, buffered(HeadRaw(head, stream))


def is_real_file(stream: IO[bytes]) -> bool:
    """True for OS files and in-memory buffers that seek cheaply."""
    if isinstance(stream, io.BytesIO):
        return True
    try:
        stream.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return stream.seekable()


def spool(stream: IO[bytes], ctx: ScanContext) -> IO[bytes]:
    """Copy a forward-only stream into a seekable temporary file (memory first, then disk)."""
    import tempfile

    out = tempfile.SpooledTemporaryFile(max_size=ctx.limits.spool_memory_bytes)
    while True:
        ctx.check_time()
        data = stream.read(1 << 20)
        if not data:
            break
        out.write(data)
    out.seek(0)
    return out


def drain(stream: IO[bytes], ctx: ScanContext) -> None:
    """Read a stream to its end (CRC checks happen at the end of zip members)."""
    while True:
        data = stream.read(1 << 20)
        if not data:
            return
        ctx.check_time()

