"""TLS connections under hostile traffic: a handshake is bounded by the header-read timeout, not asyncio's 60 s.

A real uvicorn HTTPS server on a loopback port, started with the model server's own uvicorn options
(:func:`bastion.serve.runner.uvicorn_options`, a self-signed certificate made here), in front of a tiny
ASGI app: what is under test is the connection layer, which knows nothing of the app behind it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HEADER_TIMEOUT = 1.0
SLACK = 1.5  # scheduling on a shared 2-core machine; asyncio's default would be 60 s


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.contextmanager
def _serving(folder: Path, limits: Any) -> Iterator[dict[str, Any]]:
    """A uvicorn HTTPS server with the model server's options and ``limits``, in a thread of this process."""
    import uvicorn

    from bastion.serve import ServeConfig
    from bastion.serve._conn import ENV_VAR
    from bastion.serve.runner import uvicorn_options

    before = os.environ.get(ENV_VAR)
    cert, key = _self_signed(folder)
    config = ServeConfig(ref="m@production", project_root=str(folder), tls_cert=str(cert), tls_key=str(key),
                         connections=limits)
    opts = uvicorn_options(config)
    opts.update(port=0, log_level="warning")
    server = uvicorn.Server(uvicorn.Config(_app, **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "TLS server did not start"
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        ctx = ssl.create_default_context(cafile=str(cert))
        yield {"port": port, "ctx": ctx, "server": server}
    finally:
        server.should_exit = True
        thread.join(30)
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:  # another server of this module reads its limits from there
            os.environ[ENV_VAR] = before


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from bastion.serve._conn import ConnectionLimits

    with _serving(tmp_path_factory.mktemp("tls"), ConnectionLimits(header_timeout_s=HEADER_TIMEOUT)) as tls:
        yield tls


def _closed_after(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset), or None if still open after ``limit``."""
    t0 = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - t0 < limit:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def _tls_closed_after(raw: socket.socket, obj: ssl.SSLObject, incoming: ssl.MemoryBIO, limit: float) -> float | None:
    """Like :func:`_closed_after` for a TLS session driven by hand: the server's close_notify counts."""
    t0 = time.monotonic()
    raw.settimeout(0.1)
    while time.monotonic() - t0 < limit:
        try:
            data = raw.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0
        if not data:
            return time.monotonic() - t0
        incoming.write(data)
        try:
            if obj.read(1) == b"":  # the server's close_notify
                return time.monotonic() - t0
        except ssl.SSLZeroReturnError:
            return time.monotonic() - t0
        except ssl.SSLWantReadError:
            continue
    return None


def _get(tls: dict[str, Any]) -> bytes:
    with socket.create_connection(("127.0.0.1", tls["port"]), timeout=5) as raw, \
            tls["ctx"].wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def test_a_legitimate_tls_client_is_served(tls_server: dict[str, Any]) -> None:
    resp = _get(tls_server)
    assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"ok")


def test_tcp_without_client_hello_is_closed_within_the_header_timeout(tls_server: dict[str, Any]) -> None:
    silent = socket.create_connection(("127.0.0.1", tls_server["port"]), timeout=5)
    try:
        took = _closed_after(silent, HEADER_TIMEOUT + SLACK)
        assert took is not None, "a connection that never sent its ClientHello stayed open"
        assert took >= HEADER_TIMEOUT * 0.8  # the timeout, not an immediate refusal
        # meanwhile (and after) a real client is served
        assert _get(tls_server).startswith(b"HTTP/1.1 200")
    finally:
        silent.close()


def _client_hello() -> bytes:
    """The bytes of a real TLS ClientHello (made by Python's ssl module into a memory buffer)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100  # a handshake record
    return hello


def test_client_hello_sent_byte_by_byte_is_cut_off_at_the_header_timeout(tls_server: dict[str, Any]) -> None:
    hello = _client_hello()
    s = socket.create_connection(("127.0.0.1", tls_server["port"]), timeout=5)
    try:
        t0 = time.monotonic()
        sent = 0
        closed = False
        while time.monotonic() - t0 < HEADER_TIMEOUT + SLACK and sent < len(hello):
            try:
                s.sendall(hello[sent:sent + 1])
            except OSError:
                closed = True
                break
            sent += 1
            if _closed_after(s, 0.05) is not None:
                closed = True
                break
        took = time.monotonic() - t0
        assert sent < len(hello), "the test dribbled too fast to prove anything"
        assert closed, f"a ClientHello dribbled for {took:.1f} s kept its connection"
        assert took < HEADER_TIMEOUT + SLACK
    finally:
        s.close()


def test_after_the_handshake_the_head_is_due_by_the_same_deadline(tls_server: dict[str, Any]) -> None:
    """A slow handshake does not buy a second header timeout: the request head is due ``header_timeout``
    after the connection was accepted, however much of it the handshake took."""
    ctx = tls_server["ctx"]
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    raw = socket.create_connection(("127.0.0.1", tls_server["port"]), timeout=5)
    try:
        t0 = time.monotonic()
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        raw.sendall(hello[:10])
        time.sleep(HEADER_TIMEOUT * 0.7)  # most of the budget spent before the handshake can go on
        raw.sendall(hello[10:])
        while True:  # complete the handshake over the raw socket
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out := outgoing.read():
                    raw.sendall(out)
                data = raw.recv(65536)
                assert data, "the server closed during the handshake"
                incoming.write(data)
        if out := outgoing.read():
            raw.sendall(out)
        shook = time.monotonic()
        assert shook - t0 < HEADER_TIMEOUT  # the handshake itself finished in time
        took = _tls_closed_after(raw, obj, incoming, HEADER_TIMEOUT + SLACK)
        assert took is not None, "an idle connection after a TLS handshake stayed open"
        # the remaining ~0.3 s of the budget, not a fresh full second
        assert time.monotonic() - shook < HEADER_TIMEOUT * 0.75, time.monotonic() - shook
    finally:
        raw.close()


CAP = 4


def test_connections_still_in_their_tls_handshake_count_against_the_per_client_cap(tmp_path: Path) -> None:
    """A flood of TCP connections that never finish (or start) a TLS handshake is held to the per-client
    cap at once, not only after the handshake timeout: the oldest is evicted for each newcomer, and a real
    client from the same address is still served."""
    from bastion.serve._conn import ConnectionLimits, registry_for

    # a long header timeout: anything closed within the test was closed by the cap
    with _serving(tmp_path, ConnectionLimits(header_timeout_s=60, max_per_client=CAP)) as tls:
        flood = [socket.create_connection(("127.0.0.1", tls["port"]), timeout=5) for _ in range(3 * CAP)]
        try:
            closed: set[int] = set()
            deadline = time.monotonic() + 5
            while len(closed) < 2 * CAP and time.monotonic() < deadline:
                for i, s in enumerate(flood):
                    if i not in closed and _closed_after(s, 0.02) is not None:
                        closed.add(i)
            assert closed == set(range(2 * CAP)), f"closed by the server: {sorted(closed)}"  # the oldest ones
            for s in flood[2 * CAP:]:  # the newest CAP stay (they are within the cap)
                assert _closed_after(s, 0.05) is None
            # a legitimate client from the same address: served, by evicting one more half-open connection
            assert _get(tls).startswith(b"HTTP/1.1 200")
            reg = registry_for(tls["server"].server_state)
            assert len(reg.by_client.get("127.0.0.1", {})) <= CAP
        finally:
            for s in flood:
                s.close()
        # handshakes that never completed leave nothing behind in the guard's books
        deadline = time.monotonic() + 5
        while reg.all and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not reg.all and not reg.by_client
        # and a half-open connection that sent part of a ClientHello counts as well
        hello = _client_hello()
        partial = [socket.create_connection(("127.0.0.1", tls["port"]), timeout=5) for _ in range(CAP + 1)]
        try:
            for s in partial:
                s.sendall(hello[:20])
            assert _closed_after(partial[0], 3) is not None, "the oldest half-open handshake was kept"
        finally:
            for s in partial:
                s.close()
