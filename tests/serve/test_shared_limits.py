"""Rate and concurrency limits shared by the workers of one machine (issue 15: they were split evenly per
worker). Other processes stand in for uvicorn workers: each maps the same table."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bastion.serve.limits import LIMITS_FILE_ENV, Limiter, LimitSettings, RateLimited, SharedLimiter, make_limiter

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _worker(path: Path, settings: str, script: str) -> list[str]:
    """Run ``script`` in another process with ``lim`` mapped on ``path``; returns what it printed."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {SRC!r})
        from bastion.serve.limits import LimitSettings, RateLimited, SharedLimiter
        lim = SharedLimiter(LimitSettings({settings}), {str(path)!r})
        def take(caller, n):
            got = 0
            for _ in range(n):
                try:
                    lim.acquire(caller)
                    got += 1
                except RateLimited as e:
                    print("refused", e.reason)
            print("got", got)
    """) + textwrap.dedent(script)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.split("\n")


def test_rate_is_shared_not_split(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    here = SharedLimiter(LimitSettings(rate=0.001, burst=10, concurrency=100), path)
    for _ in range(6):
        here.acquire("key-a")
        here.release("key-a")
    out = _worker(path, "rate=0.001, burst=10, concurrency=100", "take('key-a', 6); take('key-b', 3)")
    assert out[:4] == ["refused rate", "refused rate", "got 4", "got 3"]  # 10 in total; key-b is separate
    with pytest.raises(RateLimited) as e:
        here.acquire("key-a")
    assert e.value.reason == "rate" and e.value.retry_after >= 1


def test_concurrency_is_shared_and_a_dead_workers_requests_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    settings = "rate=0, concurrency=4"
    here = SharedLimiter(LimitSettings(rate=0, concurrency=4), path)
    for _ in range(2):
        here.acquire("key-a")
    # a worker takes the other two and dies without releasing them (kill -9 in the middle of requests)
    assert _worker(path, settings, "take('key-a', 3); os._exit(0)")[:2] == ["refused concurrency", "got 2"]
    with pytest.raises(RateLimited, match="concurrency"):
        here.acquire("key-a")
    # its replacement claims the dead worker's column and forgets its requests
    assert _worker(path, settings, "take('key-a', 3)")[:2] == ["refused concurrency", "got 2"]
    here.release("key-a")
    here.acquire("key-a")


def test_table_survives_many_callers(tmp_path: Path) -> None:
    lim = SharedLimiter(LimitSettings(rate=0, concurrency=1), tmp_path / "limits", slots=64)
    for i in range(500):  # far more callers than slots: idle ones are replaced, busy ones kept
        lim.acquire(f"k{i}")
        lim.release(f"k{i}")
    lim.acquire("busy")
    for i in range(500):
        lim.acquire(f"other{i}")
        lim.release(f"other{i}")
    with pytest.raises(RateLimited, match="concurrency"):
        lim.acquire("busy")


def test_runner_wires_the_shared_table_for_several_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = LimitSettings(rate=100, burst=20, concurrency=8)
    assert isinstance(make_limiter(s, 1), Limiter)
    assert isinstance(make_limiter(s, 2), Limiter)  # an app built directly, no table: the per-worker share
    monkeypatch.setenv(LIMITS_FILE_ENV, str(tmp_path / "limits"))
    shared = make_limiter(s, 2)
    assert isinstance(shared, SharedLimiter) and shared.settings == s  # the full limits, not a share
    assert (tmp_path / "limits").stat().st_mode & 0o077 == 0
