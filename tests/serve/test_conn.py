"""The connection guard's transport wrapper: a response head goes out with its body in one write, never
out of order, never lost (a head with nothing after it is sent on the next loop iteration)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bastion.serve._conn import _CoalescingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class _Recorder:
    """A transport that records each system-call-sized write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, data: Any) -> None:
        self.writes.append(b"".join(bytes(d) for d in data))

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


def _wrap() -> tuple[_CoalescingTransport, _Recorder, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    rec = _Recorder()
    return _CoalescingTransport(rec, loop), rec, loop  # type: ignore[arg-type]


def test_head_and_body_leave_in_one_write() -> None:
    t, rec, loop = _wrap()
    try:
        t.write(HEAD)
        assert rec.writes == []
        t.write(b"ok")
        assert rec.writes == [HEAD + b"ok"]
        loop.run_until_complete(asyncio.sleep(0))  # the scheduled flush finds nothing left
        assert rec.writes == [HEAD + b"ok"]
    finally:
        loop.close()


def test_a_head_alone_goes_out_on_the_next_iteration() -> None:
    """A streamed response (or ``100 Continue``) whose body comes later is not held back."""
    t, rec, loop = _wrap()
    try:
        t.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        loop.run_until_complete(asyncio.sleep(0))
        assert rec.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        t.write(b"later")
        assert rec.writes[-1] == b"later"
    finally:
        loop.close()


@pytest.mark.parametrize("data", [
    b"plain body\r\n\r\n",  # ends like a head but is not one
    b"HTTP/1.1 body text without the blank line",
    b"0\r\n\r\n",  # the last chunk of a chunked body
    b"",
])
def test_anything_else_is_written_at_once(data: bytes) -> None:
    t, rec, loop = _wrap()
    try:
        t.write(data)
        assert rec.writes == [data]
    finally:
        loop.close()


@pytest.mark.parametrize("then", ["close", "writelines", "write_eof"])
def test_a_pending_head_is_never_lost_or_reordered(then: str) -> None:
    t, rec, loop = _wrap()
    try:
        t.write(HEAD)
        if then == "close":
            t.close()
            assert rec.writes == [HEAD] and rec.closed
        elif then == "writelines":
            t.writelines([b"a", b"b"])
            assert rec.writes == [HEAD, b"ab"]
        else:
            t.write_eof()
            assert rec.writes == [HEAD, b"<eof>"]
    finally:
        loop.close()


def test_everything_else_is_the_wrapped_transports() -> None:
    t, _, loop = _wrap()
    try:
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)
        assert t.is_closing() is False
        with pytest.raises(AttributeError):
            t.no_such_method
    finally:
        loop.close()


def test_workers_slow_to_start_are_not_killed_in_a_loop(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's supervisor kills a worker that misses its health ping for ``timeout_worker_healthcheck``
    seconds (default 5) and starts another; a worker still importing and loading its model on a loaded
    machine misses it every time, and the server never comes up (seen: 14 kills in 85 s at load 7). The
    model server gives its workers 30 s."""
    import uvicorn

    from bastion.serve import ServeConfig
    from bastion.serve._conn import ENV_VAR
    from bastion.serve.runner import uvicorn_options

    monkeypatch.delenv(ENV_VAR, raising=False)  # restored afterwards (uvicorn_options sets it)
    opts = uvicorn_options(ServeConfig(ref="m@production", project_root=str(tmp_path), workers=2))
    assert uvicorn.Config("bastion.serve.app:app_from_env", factory=True, workers=2,
                          **opts).timeout_worker_healthcheck >= 30
