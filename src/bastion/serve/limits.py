"""Per-caller limits for the model server: a token-bucket rate limit and a concurrency limit.

One worker keeps them in process memory (:class:`Limiter`). Several workers of one server share one table
in shared memory (:class:`SharedLimiter`), so a key gets the configured rate and concurrency in total, not
a per-worker share. Nothing is shared across machines: behind a load balancer each machine enforces the
full limits. Refusals carry a Retry-After in seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fcntl import LOCK_EX, LOCK_UN, flock
from pathlib import Path

from bastion.errors import ConfigError

__all__ = ["LIMITS_FILE_ENV", "LimitSettings", "Limiter", "RateLimited", "SharedLimiter", "make_limiter"]

LIMITS_FILE_ENV = "BASTION_LIMITS_FILE"


@dataclass(frozen=True)
class LimitSettings:
    """``rate`` requests per second with bursts of ``burst`` per key; ``concurrency`` requests in flight
    per key; ``timeout_s`` per request; ``max_rows`` per batch. ``rate = 0`` turns the rate limit off."""

    rate: float = 1000.0
    burst: int = 200
    concurrency: int = 64
    timeout_s: float = 10.0
    max_rows: int = 1000
    max_body_bytes: int = 1_048_576
    max_depth: int = 8

    def __post_init__(self) -> None:
        checks = {
            "rate": self.rate >= 0 and math.isfinite(self.rate),
            "burst": self.burst >= 1,
            "concurrency": self.concurrency >= 1,
            "timeout_s": self.timeout_s > 0 and math.isfinite(self.timeout_s),
            "max_rows": self.max_rows >= 1,
            "max_body_bytes": self.max_body_bytes >= 64,
            "max_depth": self.max_depth >= 3,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"Invalid server limits {bad}: rate >= 0, burst/concurrency/max_rows >= 1, "
                              "timeout_s > 0, max_body_bytes >= 64, max_depth >= 3.")

    def per_worker(self, workers: int) -> LimitSettings:
        """The share of each of ``workers`` processes (so the whole server keeps the configured rate)."""
        if workers <= 1:
            return self
        return LimitSettings(self.rate / workers, max(1, self.burst // workers), max(1, self.concurrency // workers),
                             self.timeout_s, self.max_rows, self.max_body_bytes, self.max_depth)


@dataclass
class RateLimited(Exception):
    """Refused: ``retry_after`` seconds until the caller may try again; ``reason`` is rate or concurrency."""

    retry_after: int
    reason: str


class _Bucket:
    __slots__ = ("inflight", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.inflight = 0


class Limiter:
    """Admit or refuse one request of a caller. Runs on the event loop thread only (no locks needed)."""

    def __init__(self, settings: LimitSettings, *, max_callers: int = 100_000) -> None:
        self.settings = settings
        self._buckets: dict[str, _Bucket] = {}
        self._max_callers = max_callers

    def acquire(self, caller: str) -> None:
        """Take a token and a concurrency slot for ``caller`` or raise :class:`RateLimited`."""
        s = self.settings
        now = time.monotonic()
        b = self._buckets.get(caller)
        if b is None:
            if len(self._buckets) >= self._max_callers:  # bounded memory: forget idle callers
                self._buckets = {k: v for k, v in self._buckets.items() if v.inflight}
            b = self._buckets[caller] = _Bucket(float(s.burst), now)
        if b.inflight >= s.concurrency:
            raise RateLimited(1, "concurrency")
        if s.rate > 0:
            b.tokens = min(float(s.burst), b.tokens + (now - b.stamp) * s.rate)
            b.stamp = now
            if b.tokens < 1.0:
                raise RateLimited(max(1, math.ceil((1.0 - b.tokens) / s.rate)), "rate")
            b.tokens -= 1.0
        b.inflight += 1

    def release(self, caller: str) -> None:
        b = self._buckets.get(caller)
        if b is not None and b.inflight > 0:
            b.inflight -= 1


# -- shared across the workers of one machine ------------------------------------------------------------
_MAX_WORKERS = 64
_HEADER = struct.Struct(f"<8sI4x{_MAX_WORKERS}q")  # magic, slots, pid of each worker column
# key hash, tokens, stamp, (reserved), then requests in flight per worker column
_SLOT = struct.Struct(f"<Qddi{_MAX_WORKERS}i")
_HEAD = struct.Struct("<Qddi")  # the fields read on every request
_I32 = struct.Struct("<i")
_COLUMNS_AT = _HEAD.size
_MAGIC = b"BSTLIM03"
_COLUMNS = struct.Struct(f"<{_MAX_WORKERS}i")
_PROBE = 32


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process: alive
        return True
    return True


class SharedLimiter:
    """The same limits as :class:`Limiter`, kept in a shared-memory table that every worker maps.

    Each slot holds one caller (by a 64-bit hash of its key id): its token bucket and its requests in flight
    per worker column (the total is their sum), so that a crashed worker's requests are forgotten when its
    replacement starts (a worker claims a column whose process is gone and zeroes it). Admission holds an
    ``flock`` on the file for a few microseconds; a release only lowers the worker's own column (one
    writer per column, an aligned 4-byte store), without the lock. ``time.monotonic`` is the system-wide
    CLOCK_MONOTONIC, the same in every worker.
    """

    def __init__(self, settings: LimitSettings, path: str | Path, *, slots: int = 4096) -> None:
        self.settings = settings
        self.path = Path(path)
        size = _HEADER.size + slots * _SLOT.size
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._fd = fd
        self._where: dict[str, tuple[int, int]] = {}  # caller -> (hash, slot offset last seen)
        with self._locked():
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._mm = mmap.mmap(fd, size)
            magic, n, *pids = _HEADER.unpack_from(self._mm, 0)
            if magic != _MAGIC:
                self._mm[:] = bytes(size)
                _HEADER.pack_into(self._mm, 0, _MAGIC, slots, *([0] * _MAX_WORKERS))
                n, pids = slots, [0] * _MAX_WORKERS
            if n != slots:
                raise ConfigError(f"The shared limits table {self.path} has {n} slots; expected {slots}.")
            self.slots = slots
            self.column = self._claim_column(pids)
        self._mine_at = _COLUMNS_AT + 4 * self.column

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _claim_column(self, pids: list[int]) -> int:
        me = os.getpid()
        free = [i for i, pid in enumerate(pids) if pid == me] or [i for i, pid in enumerate(pids) if not _alive(pid)]
        if not free:
            raise ConfigError(f"More than {_MAX_WORKERS} processes share the limits table {self.path}.")
        col = free[0]
        if pids[col] != me:  # the previous owner of this column is gone: so are its requests in flight
            at = _COLUMNS_AT + 4 * col
            for i in range(self.slots):
                _I32.pack_into(self._mm, _HEADER.size + i * _SLOT.size + at, 0)
        pids[col] = me
        _HEADER.pack_into(self._mm, 0, _MAGIC, self.slots, *pids)
        return col

    def _hash(self, caller: str) -> tuple[int, int]:
        hit = self._where.get(caller)
        if hit is None:
            if len(self._where) > 100_000:
                self._where.clear()
            h = int.from_bytes(hashlib.blake2b(caller.encode(), digest_size=8).digest(), "little") | 1
            hit = self._where[caller] = (h, -1)
        return hit

    def _find(self, caller: str, now: float, *, claim: bool) -> int | None:
        """The slot offset of ``caller`` (claimed when new and ``claim``); None when absent or the probe
        window is full of callers with requests in flight."""
        h, last = self._hash(caller)
        mm = self._mm
        if last >= 0 and _HEAD.unpack_from(mm, last)[0] == h:
            return last
        base, start = _HEADER.size, h % self.slots
        spare: int | None = None
        spare_stamp = math.inf
        for k in range(_PROBE):
            off = base + ((start + k) % self.slots) * _SLOT.size
            key, _, stamp, _ = _HEAD.unpack_from(mm, off)
            if key == h:
                self._where[caller] = (h, off)
                return off
            if key == 0:
                spare, spare_stamp = off, -math.inf
                break
            if stamp < spare_stamp and not any(_COLUMNS.unpack_from(mm, off + _COLUMNS_AT)):
                spare, spare_stamp = off, stamp
        if spare is None or not claim:
            return None
        # a new caller (or one that replaces the longest idle caller of the window): a full bucket
        _SLOT.pack_into(mm, spare, h, float(self.settings.burst), now, 0, *([0] * _MAX_WORKERS))
        self._where[caller] = (h, spare)
        return spare

    def acquire(self, caller: str) -> None:
        """Take a token and a concurrency slot for ``caller`` or raise :class:`RateLimited`."""
        s = self.settings
        mm = self._mm
        flock(self._fd, LOCK_EX)  # no context manager: this runs on every request
        try:
            now = time.monotonic()
            off = self._find(caller, now, claim=True)
            if off is None:
                raise RateLimited(1, "concurrency")
            key, tokens, stamp, _ = _HEAD.unpack_from(mm, off)
            if sum(_COLUMNS.unpack_from(mm, off + _COLUMNS_AT)) >= s.concurrency:
                raise RateLimited(1, "concurrency")
            if s.rate > 0:
                tokens = min(float(s.burst), tokens + max(0.0, now - stamp) * s.rate)
                if tokens < 1.0:
                    _HEAD.pack_into(mm, off, key, tokens, now, 0)
                    raise RateLimited(max(1, math.ceil((1.0 - tokens) / s.rate)), "rate")
                tokens -= 1.0
            _HEAD.pack_into(mm, off, key, tokens, now, 0)
            (mine,) = _I32.unpack_from(mm, off + self._mine_at)
            _I32.pack_into(mm, off + self._mine_at, mine + 1)
        finally:
            flock(self._fd, LOCK_UN)

    def release(self, caller: str) -> None:
        # No lock: only this worker writes its column, and the slot stays the caller's while its column
        # is above zero (a slot with requests in flight is never reassigned).
        mm = self._mm
        off = self._find(caller, 0.0, claim=False)
        if off is None:
            return
        at = off + self._mine_at
        (mine,) = _I32.unpack_from(mm, at)
        if mine > 0:
            _I32.pack_into(mm, at, mine - 1)

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._mm.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)


def make_limiter(settings: LimitSettings, workers: int) -> Limiter | SharedLimiter:
    """The limiter of one server process: shared memory when the runner set one up for several workers
    (``BASTION_LIMITS_FILE``), else process memory (one worker, or an app built directly)."""
    path = os.environ.get(LIMITS_FILE_ENV)
    if workers > 1 and path:
        return SharedLimiter(settings, path)
    return Limiter(settings.per_worker(workers))
