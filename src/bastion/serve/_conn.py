"""Connection hygiene for the model server and the dashboard: a thin guard on uvicorn's HTTP protocol.

uvicorn closes idle keep-alive connections, but a connection that never sends a complete request head
is never timed out, and its only cap (``limit_concurrency``) answers 503 to *everyone* once idle
sockets fill it. This guard, applied to every accepted connection:

- closes a connection whose request head has not fully arrived ``header_timeout_s`` after it was
  opened (or after its previous response): idle floods and slowloris heads end in seconds;
- caps connections per client address and in total by **evicting an idle connection** (no request in
  flight; first the oldest that never sent a complete request head, then the least recently active
  keep-alive one) rather than refusing the newcomer, so a flood of idle
  sockets cannot keep ``/healthz`` or a keyed request out; a newcomer is refused only when every
  connection above the cap is busy with a request;
- raises the process's open-file soft limit towards the hard limit, so the caps, not the descriptor
  table, decide.

Settings reach uvicorn's worker processes through the ``BASTION_CONN_LIMITS`` environment variable
(uvicorn builds the protocol by import string, so there is nothing else to pass).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import collections
import errno
import json
import logging
import os
import resource
import socket
import weakref
from dataclasses import asdict, dataclass
from typing import Any

from bastion.errors import ConfigError

__all__ = ["ENV_VAR", "ConnectionLimits", "guarded_http", "raise_fd_limit", "uvicorn_connection_options"]

log = logging.getLogger("bastion.serve")

ENV_VAR = "BASTION_CONN_LIMITS"


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a request head may take, how long an idle keep-alive connection stays, and the caps."""

    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 4096
    max_per_client: int = 256
    max_head_bytes: int = 65536

    def __post_init__(self) -> None:
        bad = [k for k, ok in {
            "header_timeout_s": 0 < self.header_timeout_s <= 3600,
            "keep_alive_s": 0 < self.keep_alive_s <= 3600,
            "max_connections": self.max_connections >= 2,
            "max_per_client": 1 <= self.max_per_client,
            "max_head_bytes": 1024 <= self.max_head_bytes <= 16 * 1024 * 1024,
        }.items() if not ok]
        if bad:
            raise ConfigError(f"Invalid connection limits {bad}: timeouts in (0, 3600] seconds, "
                              "max_connections >= 2, max_per_client >= 1, max_head_bytes in [1 KiB, 16 MiB].")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_env() -> ConnectionLimits:
        text = os.environ.get(ENV_VAR)
        if not text:
            return ConnectionLimits()
        try:
            return ConnectionLimits(**json.loads(text))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"Malformed {ENV_VAR}: {e}.") from e


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-file limit to ``wanted`` (at most the hard limit); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # pragma: no cover - a container may forbid it; the caps still apply
            pass
    return int(soft)


def guarded_http() -> str:
    """The import string of the guarded protocol for uvicorn's ``http=`` option."""
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return "bastion.serve._conn:GuardedH11Protocol"
    return "bastion.serve._conn:GuardedHttpToolsProtocol"


def uvicorn_connection_options(limits: ConnectionLimits) -> dict[str, Any]:
    """uvicorn options for the guard: the protocol, keep-alive, and no ``limit_concurrency`` (the guard caps
    connections by eviction; uvicorn's cap would answer 503 to everyone instead). Sets ``BASTION_CONN_LIMITS``
    so worker processes use the same limits, and raises the descriptor limit above the total cap."""
    os.environ[ENV_VAR] = limits.to_json()
    soft = raise_fd_limit(limits.max_connections + 512)
    if soft < limits.max_connections + 64:
        log.warning("open-file limit %s is below the connection cap %s; new connections may be reset",
                    soft, limits.max_connections)
    return {"http": guarded_http(), "loop": "bastion.serve._conn:new_guarded_loop",
            "timeout_keep_alive": limits.keep_alive_s, "limit_concurrency": None}


class _CountedTLS(asyncio.sslproto.SSLProtocol):
    """asyncio's TLS layer in front of a guarded HTTP protocol, which registers the connection with the
    guard as soon as TCP is accepted, not when the handshake is done: connections still in their handshake
    count against the per-client and total caps (and, never having sent a request head, are the first to
    be evicted), so a flood of half-open TLS connections is bounded by the caps, not only by time."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport instances, but have its methods)
        app = self._app_protocol
        if isinstance(app, _GuardMixin):
            if not app._bastion_accepted(transport):  # type: ignore[arg-type]
                transport.abort()  # type: ignore[attr-defined]  # over a cap, every other connection busy: refused before any TLS work
                return
            app._bastion_tcp = transport  # type: ignore[assignment]
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        app = self._app_protocol
        if isinstance(app, _GuardMixin):
            app._bastion_unregister()  # the handshake failed or timed out (else a no-op: the app's own
            # connection_lost, called from here, unregisters too)
        super().connection_lost(exc)


def new_guarded_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's ``loop=`` hook: a new event loop of the usual kind (uvloop when installed, as uvicorn's
    ``auto``), whose ``create_server`` bounds a TLS handshake (and a TLS shutdown) by the header-read
    timeout instead of asyncio's default 60 s (and 30 s), and counts connections still in their TLS
    handshake against the connection caps.

    With TLS the HTTP protocol only sees a connection once its handshake is done: a client that opens TCP
    and never sends its ClientHello, or sends it a byte at a time, would otherwise hold the socket for a
    minute, and uncounted. So with TLS the server runs plain TCP and puts asyncio's TLS layer
    (:class:`_CountedTLS`, the same design as uvloop's) in front of each connection itself: that layer sees
    the TCP connection, and its peer address, at accept time.
    """
    global _LOOP_CLASS
    if _LOOP_CLASS is None:
        base: Any
        try:
            import uvloop

            base = uvloop.Loop
        except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
            base = asyncio.SelectorEventLoop

        async def create_server(self: Any, protocol_factory: Any, *args: Any, **kw: Any) -> Any:
            ctx = kw.pop("ssl", None)
            if ctx is not None:
                timeout = ConnectionLimits.from_env().header_timeout_s
                handshake = kw.pop("ssl_handshake_timeout", None) or timeout
                # a closed connection waits this long (not 30 s) for the client's close_notify
                shutdown = kw.pop("ssl_shutdown_timeout", None) or timeout
                app_factory = protocol_factory

                def protocol_factory() -> _CountedTLS:
                    return _CountedTLS(self, app_factory(), ctx, None, server_side=True,  # type: ignore[arg-type]
                                       ssl_handshake_timeout=handshake, ssl_shutdown_timeout=shutdown)  # type: ignore[arg-type]
            sock = kw.get("sock")
            if sock is not None and not args and kw.get("host") is None and kw.get("port") is None:
                # a listening socket shared by several worker processes (uvicorn --workers N)
                return _OneAcceptServer(self, sock, protocol_factory, int(kw.get("backlog") or 100))
            return await base.create_server(self, protocol_factory, *args, **kw)

        _LOOP_CLASS = type(f"Guarded{base.__name__}", (base,), {"create_server": create_server})
    loop: asyncio.AbstractEventLoop = _LOOP_CLASS()
    return loop


_LOOP_CLASS: Any = None
_ACCEPT_RETRY_S = 0.1


class _OneAcceptServer:
    """The listening side of one worker when several workers share a listening socket: **one** accept per
    readiness event, then back to the event loop.

    uvloop (like asyncio) accepts every pending connection whenever the socket is readable, so the worker
    that wakes first takes a whole burst: 8 keep-alive connections opened together ended up 6 / 2 or 8 / 0
    on two workers, and the busier worker served them all while the other idled. Taking one at a time, the
    workers alternate, and a worker busy with requests comes back to accept less often than an idle one,
    so connections go where there is time to serve them. Out of descriptors, accepting pauses for 0.1 s
    (the connection waits in the kernel's queue) instead of spinning.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: Any, protocol_factory: Any, backlog: int) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = protocol_factory
        self.sockets = [sock]
        self._reading = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        sock.setblocking(False)
        sock.listen(backlog)  # uvicorn's supervisor binds it; each worker's server listens (as asyncio's does)
        self._start()

    def _start(self) -> None:
        self._retry = None
        if not self._closed and not self._reading:
            self._loop.add_reader(self._sock.fileno(), self._accept)
            self._reading = True

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as e:  # EMFILE, ENFILE, ENOBUFS, ENOMEM...: the socket stays readable, so pause
            log.warning("cannot accept connections (%s); pausing %.1f s",
                        errno.errorcode.get(e.errno or 0, e.errno), _ACCEPT_RETRY_S)
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False
            self._retry = self._loop.call_later(_ACCEPT_RETRY_S, self._start)
            return
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):  # as uvloop's own server: no Nagle delay
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._connect(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: Any) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:  # the client reset it already
            conn.close()

    def is_serving(self) -> bool:
        return self._reading

    def close(self) -> None:
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    async def wait_closed(self) -> None:
        return None


class _Registry:
    """Live connections of one server, least recently active first (overall and per client address)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.all: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self.by_client: dict[str, collections.OrderedDict[Any, None]] = {}
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0

    def add(self, conn: Any, client: str) -> bool:
        """Register ``conn``; evict idle ones over the caps. False: ``conn`` itself must be refused."""
        mine = self.by_client.setdefault(client, collections.OrderedDict())
        if len(mine) >= self.limits.max_per_client and not self._evict(mine):
            self.refused += 1
            return False
        if len(self.all) >= self.limits.max_connections and not self._evict(self.all):
            self.refused += 1
            return False
        mine[conn] = None
        self.all[conn] = None
        return True

    def _evict(self, pool: collections.OrderedDict[Any, None]) -> bool:
        # First a connection that never completed a request head (what an idle flood opens), then any
        # idle one: a client's keep-alive connection between two requests goes last.
        victim = next((c for c in pool if c._bastion_seen is None and c._bastion_idle()), None)
        if victim is None:
            victim = next((c for c in pool if c._bastion_idle()), None)
        if victim is None:
            return False
        self.evicted += 1
        victim._bastion_close()  # removes it from the pools
        return True

    def touch(self, conn: Any, client: str) -> None:
        if conn in self.all:
            self.all.move_to_end(conn)
        mine = self.by_client.get(client)
        if mine is not None and conn in mine:
            mine.move_to_end(conn)

    def remove(self, conn: Any, client: str) -> None:
        self.all.pop(conn, None)
        mine = self.by_client.get(client)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self.by_client[client]


_registries: weakref.WeakKeyDictionary[Any, _Registry] = weakref.WeakKeyDictionary()


def registry_for(server_state: Any) -> _Registry:
    """The registry of the server owning ``server_state`` (created with the limits from the environment)."""
    reg = _registries.get(server_state)
    if reg is None:
        reg = _registries[server_state] = _Registry(ConnectionLimits.from_env())
    return reg


class _CoalescingTransport:
    """The connection's transport, sending a response head together with the first body write.

    uvicorn writes a response's head and its body with two ``write`` calls, that is two ``send`` system
    calls and two segments on the wire (the client wakes up twice). Here a head is held back and joined
    with the write that follows it; when nothing follows in the same loop iteration (a streamed response,
    ``100 Continue``) it goes out on the next iteration. Order is never changed: every write goes through
    the one pending buffer. Everything else is the wrapped transport's.
    """

    __slots__ = ("_head", "_loop", "_t")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._t = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._t.writelines((head, data))
        elif data[-4:] == b"\r\n\r\n" and data[:5] == b"HTTP/":
            self._head = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._t.write(data)

    def _flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if not self._t.is_closing():
                self._t.write(head)

    def writelines(self, data: Any) -> None:
        self._flush()
        self._t.writelines(data)

    def write_eof(self) -> None:
        self._flush()
        self._t.write_eof()

    def close(self) -> None:
        self._flush()
        self._t.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


class _GuardMixin:
    """Mixed in front of a uvicorn HTTP protocol class (which provides the attributes used here)."""

    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop
    server_state: Any

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        # Made when the connection is accepted: before a TLS handshake, which the head's deadline includes.
        self._bastion_born = self.loop.time()
        self._bastion_timer: asyncio.TimerHandle | None = None
        self._bastion_seen: Any = None
        self._bastion_registered = False
        self._bastion_tcp: asyncio.Transport | None = None  # set while a TLS handshake is under way

    def _bastion_accepted(self, transport: asyncio.Transport) -> bool:
        """Register the connection under its peer address; False: it is over a cap and must be refused."""
        peer = transport.get_extra_info("peername")
        self._bastion_client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        self._bastion_reg = registry_for(self.server_state)
        if not self._bastion_reg.add(self, self._bastion_client):
            return False
        self._bastion_registered = True
        return True

    def _bastion_unregister(self) -> None:
        self._bastion_disarm()
        self._bastion_tcp = None
        if self._bastion_registered:
            self._bastion_registered = False
            self._bastion_reg.remove(self, self._bastion_client)

    def connection_made(self, transport: asyncio.Transport) -> None:
        transport = _CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        super().connection_made(transport)  # type: ignore[misc]
        self._bastion_tcp = None  # a TLS handshake, if any, is done
        if not self._bastion_registered and not self._bastion_accepted(transport):
            transport.abort()
            return
        # the first head is due header_timeout_s after the accept (a TLS handshake spent part of that)
        self._bastion_arm(self._bastion_born - self.loop.time())

    def connection_lost(self, exc: Exception | None) -> None:
        self._bastion_unregister()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not None and cycle is not self._bastion_seen:  # a request head completed
            self._bastion_seen = cycle
            self._bastion_disarm()
            if self._bastion_registered:
                self._bastion_reg.touch(self, self._bastion_client)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing() and self._bastion_registered:
            self._bastion_reg.touch(self, self._bastion_client)
            self._bastion_arm()  # the next request head must arrive in time as well

    # -- guard internals --------------------------------------------------------------------------
    def _bastion_idle(self) -> bool:
        cycle = self.cycle
        return (cycle is None or bool(cycle.response_complete)) and not getattr(self, "pipeline", None)

    def _bastion_close(self) -> None:
        tcp = self._bastion_tcp
        self._bastion_unregister()
        if tcp is not None:  # evicted during its TLS handshake: no HTTP transport yet
            tcp.abort()
        else:
            self.transport.close()

    def _bastion_arm(self, offset: float = 0.0) -> None:
        self._bastion_disarm()
        delay = max(0.0, self._bastion_reg.limits.header_timeout_s + offset)
        self._bastion_timer = self.loop.call_later(delay, self._bastion_expire, self.cycle)

    def _bastion_disarm(self) -> None:
        timer = getattr(self, "_bastion_timer", None)
        if timer is not None:
            timer.cancel()
            self._bastion_timer = None

    def _bastion_expire(self, armed_with: Any) -> None:
        self._bastion_timer = None
        if self.cycle is armed_with and self._bastion_idle():  # still no complete request head
            self._bastion_reg.timed_out += 1
            self._bastion_close()


_TOO_LARGE = b"The request head (or the trailers of a chunked body) is too large."
_TOO_LARGE_RESPONSE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                       b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE))


class _HeadCapMixin(_GuardMixin):
    """For httptools (llhttp has no size limit of its own, and uvicorn keeps every header and URL byte): the
    bytes of a request that are not its body (request line, headers, chunk framing, trailers) may not exceed
    ``max_head_bytes`` plus the body's own size; past that the connection gets a 431 and is closed. Without it
    a 10 s stream of trailer lines grows the server by gigabytes (every trailer joins the request's header
    list), and a single endless header or URL is accumulated by copying. h11 bounds its events itself."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._bastion_extra = 0  # non-body bytes of the current message
        self._bastion_body = 0  # its body bytes
        self._bastion_fed = 0  # body bytes the parser delivered during the current data_received
        self._bastion_ended = False  # a message completed during the current data_received
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._bastion_fed = 0
        self._bastion_ended = False
        super().data_received(data)
        if self._bastion_ended:  # a new message starts within this feed: count afresh (under by < one read)
            self._bastion_extra = self._bastion_body = 0
            return
        self._bastion_extra += len(data) - self._bastion_fed
        if self._bastion_extra > self._bastion_reg.limits.max_head_bytes + self._bastion_body:
            self._bastion_refuse_head()

    def on_body(self, body: bytes) -> None:
        self._bastion_fed += len(body)
        self._bastion_body += len(body)
        super().on_body(body)  # type: ignore[misc]

    def on_message_complete(self) -> None:
        self._bastion_ended = True
        super().on_message_complete()  # type: ignore[misc]

    def _bastion_refuse_head(self) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(_TOO_LARGE_RESPONSE)
        log.warning("closed a connection whose request head or trailers passed %s bytes",
                    self._bastion_reg.limits.max_head_bytes)
        self._bastion_close()


def _protocols() -> tuple[type, type]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class _H11(_GuardMixin, H11Protocol):  # type: ignore[misc]
        pass

    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover
        return _H11, _H11

    class _HttpTools(_HeadCapMixin, HttpToolsProtocol):  # type: ignore[misc]
        pass

    return _H11, _HttpTools


GuardedH11Protocol, GuardedHttpToolsProtocol = _protocols()
GuardedH11Protocol.__name__ = GuardedH11Protocol.__qualname__ = "GuardedH11Protocol"
GuardedHttpToolsProtocol.__name__ = GuardedHttpToolsProtocol.__qualname__ = "GuardedHttpToolsProtocol"
