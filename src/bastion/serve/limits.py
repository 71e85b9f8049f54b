"""Per-caller limits for the model server: a token-bucket rate limit and a concurrency limit.

Both are per process (each worker enforces its share); refusals carry a Retry-After in seconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from bastion.errors import ConfigError

__all__ = ["LimitSettings", "Limiter", "RateLimited"]


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
