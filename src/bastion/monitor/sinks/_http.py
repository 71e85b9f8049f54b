"""One JSON POST for the HTTP sinks, classified into delivered / retry / give up.

A hostile or broken receiver must not stall monitoring nor be mistaken for a delivery:

* the whole attempt (connect, send, status line, headers) has one deadline, ``timeout`` seconds; a
  receiver that answers one byte at a time (each read under the socket timeout) is cut off there and
  its connection closed;
* redirects are never followed: urllib would turn the POST into a GET to the new location (possibly
  another host) and count that answer as the delivery. A 3xx is a final failure naming the status;
* the response body is never read (only the status), so a huge answer costs nothing.
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

from bastion.monitor.sinks.interface import Attempt

__all__ = ["post"]

USER_AGENT = "bastion-monitor/1"
_CLOSE_GRACE = 1.0  # seconds to let the worker notice its closed connection


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then raises HTTPError(code): handled as a final failure below


class _Connections:
    """The connections one attempt opened, so the caller can close them at the deadline."""

    def __init__(self) -> None:
        self.items: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def close_all(self) -> None:
        with self.lock:
            conns = list(self.items)
        for c in conns:
            sock = c.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
                except OSError:
                    pass
            try:
                c.close()
            except OSError:  # pragma: no cover - closing a dead socket
                pass


def _opener(track: _Connections) -> urllib.request.OpenerDirector:
    class _Tracking:
        def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
            def factory(*a: Any, **k: Any) -> http.client.HTTPConnection:
                conn: http.client.HTTPConnection = http_class(*a, **k)
                with track.lock:
                    track.items.append(conn)
                return conn

            return super().do_open(factory, req, **kw)  # type: ignore[misc]

    class _Http(_Tracking, urllib.request.HTTPHandler):
        pass

    class _Https(_Tracking, urllib.request.HTTPSHandler):
        pass

    return urllib.request.build_opener(_NoRedirect, _Http, _Https)


def _post_once(url: str, body: bytes, headers: dict[str, str], timeout: float, track: _Connections) -> Attempt:
    req = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - http(s) checked in the config
                                 headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
    try:
        with _opener(track).open(req, timeout=timeout) as resp:
            if 200 <= resp.status < 300:
                return Attempt(True)
            return Attempt(False, True, f"HTTP {resp.status}")
    except urllib.error.HTTPError as e:
        if 300 <= e.code < 400:
            return Attempt(False, False, f"HTTP {e.code}: redirects are not followed; configure the final URL")
        return Attempt(False, not (400 <= e.code < 500 and e.code not in (408, 429)), f"HTTP {e.code}")
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        return Attempt(False, True, f"{type(e).__name__}: {getattr(e, 'reason', e)}")
    except ValueError as e:  # a malformed URL (e.g. from an environment variable)
        return Attempt(False, False, f"invalid URL: {e}")


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Attempt:
    """POST ``body``; 2xx is delivered, 3xx and 4xx other than 408/429 are final (retrying will not help).

    The attempt runs in a worker thread and ends after ``timeout`` seconds whatever the receiver does.
    """
    track = _Connections()
    box: list[Attempt] = []
    errors: list[Exception] = []

    def work() -> None:
        try:
            box.append(_post_once(url, body, headers, timeout, track))
        except Exception as e:  # handed to the caller, as if the POST had run in its thread
            errors.append(e)

    worker = threading.Thread(target=work, name="bastion-alert-post", daemon=True)
    worker.start()
    worker.join(timeout)
    if errors:
        raise errors[0]
    if box:
        return box[0]
    track.close_all()
    worker.join(_CLOSE_GRACE)
    return Attempt(False, True, f"no complete answer within {timeout:g} s (receiver too slow)")


def check_http_url(v: str, what: str) -> str:
    if not v.startswith(("http://", "https://")):
        raise ValueError(f"{what} must start with http:// or https://; got {v!r}")
    return v
