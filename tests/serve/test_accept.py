"""Workers sharing one listening socket take one connection per wake-up (issue 15, 2-worker serving).

uvloop accepts every pending connection whenever the socket is readable, so with ``--workers 2`` the worker
that woke first took a whole burst of keep-alive connections (seen: 6 / 2 and 8 / 0 of wrk's 8) and served
them alone. The guarded loop's server for a shared socket accepts one per readiness event.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bastion.serve._conn import _OneAcceptServer, new_guarded_loop

REPO = Path(__file__).resolve().parents[2]


class _Made(asyncio.Protocol):
    made: list[asyncio.BaseTransport] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _Made.made.append(transport)


def _bound() -> socket.socket:
    # bound, not listening: how uvicorn's supervisor hands the socket to its workers
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_one_connection_per_readiness_event() -> None:
    loop = new_guarded_loop()
    sock = _bound()
    _Made.made = []

    async def main() -> None:
        server = await loop.create_server(_Made, sock=sock, backlog=16)
        assert isinstance(server, _OneAcceptServer) and server.is_serving()
        server.close()  # no reader: this test drives the accepts
        clients = [socket.create_connection(sock.getsockname(), timeout=5) for _ in range(3)]
        try:
            time.sleep(0.05)  # the three handshakes are done, all three wait in the queue
            server._accept()
            await _settle()
            assert len(_Made.made) == 1
            left = []
            while True:
                try:
                    left.append(sock.accept()[0])
                except BlockingIOError:
                    break
            assert len(left) == 2  # the rest stayed queued for another worker
            for c in left:
                c.close()
        finally:
            for c in clients:
                c.close()
            for t in _Made.made:
                t.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        sock.close()


def test_out_of_descriptors_pauses_accepting_instead_of_spinning() -> None:
    loop = new_guarded_loop()
    real = _bound()
    _Made.made = []

    class Flaky:  # a listening socket whose first accept fails with EMFILE
        fails = 1

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def accept(self) -> tuple[socket.socket, Any]:
            if Flaky.fails:
                Flaky.fails -= 1
                raise OSError(errno.EMFILE, "Too many open files")
            return real.accept()

    async def main() -> None:
        server = _OneAcceptServer(loop, Flaky(), _Made, 16)
        client = socket.create_connection(real.getsockname(), timeout=5)
        try:
            deadline = time.monotonic() + 5
            while server.is_serving() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            assert not server.is_serving() and not _Made.made  # paused, nothing accepted
            while not _Made.made and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert server.is_serving() and len(_Made.made) == 1  # resumed after the pause, and accepted
        finally:
            server.close()
            client.close()
            for t in _Made.made:
                t.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        real.close()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_two_worker_server_serves_from_both_workers(tmp_path: Path, tls: bool) -> None:
    """A real ``uvicorn --workers 2`` with the model server's loop and connection guard: each worker listens
    on the shared socket and serves (an accept path that never listened would answer nothing), over plain
    HTTP and over TLS (the guard's own TLS layer on the one-accept server)."""
    extra: list[str] = []
    ctx: ssl.SSLContext | None = None
    if tls:
        from tests.serve.test_tls_handshake import _self_signed

        cert, key = _self_signed(tmp_path)
        extra = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
        ctx = ssl.create_default_context(cafile=str(cert))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    env.pop("BASTION_CONN_LIMITS", None)
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.serve._pid_app:app", "--port", str(port), "--workers", "2",
         "--loop", "bastion.serve._conn:new_guarded_loop", "--http", "bastion.serve._conn:GuardedHttpToolsProtocol",
         "--timeout-worker-healthcheck", "30", "--log-level", "info",
         # a TLS connection the client closed without close_notify lingers until the TLS shutdown timeout
         "--timeout-graceful-shutdown", "1", *extra],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while (tmp_path / "server.log").read_text().count("Application startup complete") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        pids: set[bytes] = set()
        for _ in range(200):  # new connections until both workers have answered
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                c = ctx.wrap_socket(raw, server_hostname="127.0.0.1") if ctx is not None else raw
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                out = b""
                while chunk := c.recv(4096):
                    out += chunk
            assert out.startswith(b"HTTP/1.1 200"), out
            pids.add(out.rsplit(b"\r\n\r\n", 1)[1])
            if len(pids) == 2 or tls:  # over TLS one answer shows the path works (both workers run it)
                break
        assert len(pids) == (1 if tls else 2), f"worker(s) {pids} answered"
        assert "cannot accept" not in (tmp_path / "server.log").read_text()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        log.close()
