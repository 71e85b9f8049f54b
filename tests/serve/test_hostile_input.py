"""Hostile HTTP input against a real `bastion serve` (uvicorn + httptools, the connection guard, every layer on):
each row is one attack sent over a raw socket, with the status it must get (never a 5xx, never a traceback,
never the caller's key echoed); the streaming attacks run while /healthz and a keyed prediction must still
answer within 2 s, and the server's memory must stay flat.
"""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from .helpers import good_row

TIMEOUT_S = 1.5  # the request timeout (reading the body included) of the module's server


class _Live:
    def __init__(self, port: int, key: str, sample: Any) -> None:
        self.port, self.key, self.sample = port, key, sample
        self.path = f"/v1/models/{sample.name}:predict"
        self.row = good_row(sample)

    def body(self, **change: Any) -> bytes:
        return json.dumps({"instances": [{**self.row, **change}]}).encode()

    def with_literal(self, field: str, literal: bytes) -> bytes:
        """A body whose ``field`` is the raw JSON text ``literal`` (what json.dumps cannot write)."""
        marker = "\u2603marker"
        return self.body(**{field: marker}).replace(json.dumps(marker).encode(), literal)

    def post(self, body: bytes, *, extra: bytes = b"", content_type: bytes | None = b"application/json",
             path: bytes | None = None, version: bytes = b"HTTP/1.1", length: bool = True) -> bytes:
        head = b"POST " + (path or self.path.encode()) + b" " + version + b"\r\nHost: x\r\n"
        head += b"Authorization: Bearer " + self.key.encode() + b"\r\n"
        if content_type is not None:
            head += b"Content-Type: " + content_type + b"\r\n"
        if length:
            head += b"Content-Length: %d\r\n" % len(body)
        return head + extra + b"Connection: close\r\n\r\n" + body

    def exchange(self, data: bytes, timeout: float = 10.0) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):  # the server answered and closed before reading all
                pass
            out = b""
            while True:
                try:
                    got = s.recv(65536)
                except ConnectionResetError:
                    break
                if not got:
                    return out
                out += got
            return out


def _status(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw[9:12])


@pytest.fixture(scope="module")
def live(sample_template: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Live]:
    import os

    import uvicorn

    from bastion.project import open_project
    from bastion.serve import LimitSettings, ServeConfig, create_app
    from bastion.serve._conn import ENV_VAR, ConnectionLimits
    from bastion.serve.auth import create_api_key
    from bastion.serve.runner import uvicorn_options

    root = tmp_path_factory.mktemp("hostile-input") / "proj"
    shutil.copytree(sample_template.root, root)
    sample = replace(sample_template, root=root)
    project = open_project(root)
    key = create_api_key(project, "k-hostile-input", ["predict"]).key
    config = ServeConfig(ref=f"{sample.name}@production", project_root=str(root), poll_s=0, prediction_log=False,
                         connections=ConnectionLimits(header_timeout_s=3.0),
                         limits=LimitSettings(rate=0, timeout_s=TIMEOUT_S))
    opts = uvicorn_options(config)
    assert opts["http"].endswith("GuardedHttpToolsProtocol")  # llhttp: the parser without a size limit of its own
    opts.update(port=0, log_level="critical")
    server = uvicorn.Server(uvicorn.Config(create_app(config, project=project), **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield _Live(server.servers[0].sockets[0].getsockname()[1], key, sample)
    finally:
        server.should_exit = True
        thread.join(30)
        os.environ.pop(ENV_VAR, None)


def _chunked(body: bytes, trailer: bytes = b"") -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n" + trailer + b"\r\n"


_TE = b"Transfer-Encoding: chunked\r\n"

# (id, request builder, expected status, expected error type in the answer or None)
CASES: list[tuple[str, Callable[[_Live], bytes], int, str | None]] = [
    ("good", lambda lv: lv.post(lv.body()), 200, None),
    # numbers
    ("int-100000-digits", lambda lv: lv.post(lv.with_literal("f0", b"1" * 100_000)), 422, "number_out_of_range"),
    ("int-5000-digits-negative", lambda lv: lv.post(lv.with_literal("f0", b"-" + b"9" * 5000)), 422,
     "number_out_of_range"),
    ("float-1e999", lambda lv: lv.post(lv.with_literal("f0", b"1e999")), 422, "finite_number"),
    ("float-4000-digits", lambda lv: lv.post(lv.with_literal("f0", b"1" * 4000 + b".5")), 422, "finite_number"),
    ("NaN", lambda lv: lv.post(lv.with_literal("f0", b"NaN")), 422, "finite_number"),
    ("Infinity", lambda lv: lv.post(lv.with_literal("f0", b"Infinity")), 422, "finite_number"),
    ("-Infinity", lambda lv: lv.post(lv.with_literal("f0", b"-Infinity")), 422, "finite_number"),
    ("minus-zero", lambda lv: lv.post(lv.with_literal("f0", b"-0")), 200, None),
    ("minus-zero-float", lambda lv: lv.post(lv.with_literal("f0", b"-0.0")), 200, None),
    # structure
    ("nested-100000", lambda lv: lv.post(b"[" * 100_000 + b"]" * 100_000), 400, None),
    ("nested-in-a-row", lambda lv: lv.post(lv.with_literal("f0", b"[" * 40 + b"]" * 40)), 400, None),
    ("duplicate-instances", lambda lv: lv.post(
        b'{"instances": [], ' + lv.body()[1:]), 422, "duplicate_key"),
    ("duplicate-field-both-valid", lambda lv: lv.post(
        lv.body()[:-3] + b', "f0": ' + json.dumps(lv.row["f0"]).encode() + b"}]}"), 422, "duplicate_key"),
    ("duplicate-field-array-rows", lambda lv: lv.post(
        b'{"instances": [' + json.dumps(list(lv.row.values())).encode() + b'], "instances": ['
        + json.dumps(list(lv.row.values())).encode() + b"]}"), 422, "duplicate_key"),
    # text
    ("bom", lambda lv: lv.post(b"\xef\xbb\xbf" + lv.body()), 400, None),
    ("invalid-utf8", lambda lv: lv.post(lv.with_literal("segment", b'"\xff\xfe"')), 400, None),
    ("lone-surrogate", lambda lv: lv.post(lv.with_literal("segment", b'"\\ud800"')), 400, None),
    ("nul-in-string", lambda lv: lv.post(lv.with_literal("segment", b'"a\x00"')), 400, None),
    ("escaped-nul", lambda lv: lv.post(lv.with_literal("segment", b'"a\\u0000"')), 422, "literal_error"),
    ("overlong-string", lambda lv: lv.post(lv.with_literal("segment", b'"' + b"a" * 900_000 + b'"')), 422,
     "literal_error"),
    ("pii-value-not-echoed", lambda lv: lv.post(lv.body(segment="alice.smith@example.com")), 422, "literal_error"),
    ("pii-key-not-echoed", lambda lv: lv.post(lv.body(**{"alice.smith@example.com": 1})), 422, "extra_forbidden"),
    ("pii-credential-not-echoed", lambda lv: lv.post(lv.body()).replace(lv.key.encode(), b"alice.smith@example.com"),
     401, None),
    # media types and encodings
    ("text-plain", lambda lv: lv.post(lv.body(), content_type=b"text/plain"), 415, None),
    ("form-urlencoded", lambda lv: lv.post(lv.body(), content_type=b"application/x-www-form-urlencoded"), 415, None),
    ("charset-utf16", lambda lv: lv.post(lv.body().decode().encode("utf-16"),
                                         content_type=b"application/json; charset=utf-16"), 415, None),
    ("multipart", lambda lv: lv.post(b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n" + lv.body()
                                     + b"\r\n--b--\r\n", content_type=b"multipart/form-data; boundary=b"), 415, None),
    ("json-charset-utf8", lambda lv: lv.post(lv.body(), content_type=b'application/json; charset="UTF-8"'), 200, None),
    ("no-content-type", lambda lv: lv.post(lv.body(), content_type=None), 200, None),
    ("gzip-bomb", lambda lv: lv.post(gzip.compress(b" " * 20_000_000, mtime=0), extra=b"Content-Encoding: gzip\r\n"),
     415, None),
    ("gzip-good-json", lambda lv: lv.post(gzip.compress(lv.body(), mtime=0), extra=b"Content-Encoding: gzip\r\n"),
     415, None),
    ("deflate", lambda lv: lv.post(zlib.compress(lv.body()), extra=b"Content-Encoding: deflate\r\n"), 415, None),
    # framing
    ("chunked", lambda lv: lv.post(_chunked(lv.body()), extra=_TE, length=False), 200, None),
    ("chunked-trailers", lambda lv: lv.post(_chunked(lv.body(), b"X-T: 1\r\n"), extra=_TE, length=False), 200, None),
    ("chunked-trailers-huge", lambda lv: lv.post(_chunked(lv.body(), b"X-T: " + b"a" * 400_000 + b"\r\n"),
                                                 extra=_TE, length=False), 431, None),
    ("chunk-size-line-huge", lambda lv: lv.post(b"1" * 100_000 + b"\r\n", extra=_TE, length=False), 400, None),
    ("chunks-over-body-limit", lambda lv: lv.post(b"".join(b"4000\r\n" + b" " * 0x4000 + b"\r\n" for _ in range(70))
                                                  + b"0\r\n\r\n", extra=_TE, length=False), 413, None),
    ("content-length-short", lambda lv: lv.post(lv.body(), extra=b"Content-Length: 10\r\n", length=False), 400, None),
    ("content-length-negative", lambda lv: lv.post(lv.body(), extra=b"Content-Length: -1\r\n", length=False), 400,
     None),
    ("content-length-twice", lambda lv: lv.post(lv.body(), extra=b"Content-Length: 5\r\n"), 400, None),
    ("content-length-huge", lambda lv: lv.post(lv.body(), extra=b"Content-Length: " + b"9" * 30 + b"\r\n",
                                               length=False), 400, None),
    ("content-length-over-limit", lambda lv: lv.post(b"", extra=b"Content-Length: 2000000\r\n", length=False), 413,
     None),
    ("smuggling-cl-te", lambda lv: lv.post(b"0\r\n\r\nGET /v1/admin/status HTTP/1.1\r\nHost: x\r\n\r\n",
                                           extra=_TE), 400, None),
    ("transfer-encoding-unknown", lambda lv: lv.post(lv.body(), extra=b"Transfer-Encoding: xchunked\r\n"), 400, None),
    # heads
    ("many-headers", lambda lv: lv.post(lv.body(), extra=b"".join(b"X-%d: v\r\n" % i for i in range(500))), 200, None),
    ("header-value-400k", lambda lv: lv.post(lv.body(), extra=b"X-A: " + b"a" * 400_000 + b"\r\n"), 431, None),
    ("headers-50000", lambda lv: lv.post(lv.body(), extra=b"X-A: b\r\n" * 50_000), 431, None),
    ("query-300k", lambda lv: lv.post(lv.body(), path=lv.path.encode() + b"?" + b"a=1&" * 75_000), 431, None),
    ("query-small", lambda lv: lv.post(lv.body(), path=lv.path.encode() + b"?a=1&b=%ff"), 200, None),
    ("absolute-form", lambda lv: lv.post(lv.body(), path=b"http://evil.example" + lv.path.encode()), 200, None),
    ("traversal-encoded", lambda lv: lv.post(lv.body(), path=b"/v1/models/..%2f..%2fetc%2fpasswd:predict"), 404,
     None),
    ("traversal-dots", lambda lv: lv.post(lv.body(), path=b"/v1/models/../../" + lv.sample.name.encode()
                                          + b":predict"), 404, None),
    ("http-1.0", lambda lv: lv.post(lv.body(), version=b"HTTP/1.0"), 200, None),
    ("http-2-preface", lambda lv: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, None),
    ("head", lambda lv: b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, None),
    ("options", lambda lv: b"OPTIONS " + lv.path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405,
     None),
    ("options-star", lambda lv: b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, None),
    ("trace", lambda lv: b"TRACE " + lv.path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
     + lv.key.encode() + b"\r\nConnection: close\r\n\r\n", 405, None),
    ("connect", lambda lv: b"CONNECT evil.example:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400, None),
]


@pytest.mark.parametrize(("build", "status", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_request_gets_its_status_and_echoes_nothing(live: _Live, build: Callable[[_Live], bytes],
                                                           status: int, error: str | None) -> None:
    raw = live.exchange(build(live))
    assert _status(raw) == status, raw[:300]
    body = raw.partition(b"\r\n\r\n")[2]
    assert live.key.encode() not in raw and b"Traceback" not in raw
    assert b"alice.smith" not in raw and b"\xff\xfe" not in body
    if error is not None:
        assert error in {e["type"] for e in json.loads(body)["errors"]}, body[:300]
    if status == 200:
        assert json.loads(body)["predictions"]


def test_no_hostile_body_reaches_the_model(live: _Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every refused request above is refused before the model runs (validation is the gate to the runtime)."""
    from bastion.serve.loader import LoadedModel

    calls: list[int] = []
    real = LoadedModel.predict

    def counted(self: Any, x: Any) -> dict[str, Any]:
        calls.append(len(x))
        return real(self, x)

    monkeypatch.setattr(LoadedModel, "predict", counted)
    refused = [build for _, build, status, _ in CASES if status != 200]
    for build in refused:
        assert _status(live.exchange(build(live))) >= 400
    assert calls == []
    assert _status(live.exchange(live.post(live.body()))) == 200 and calls == [1]  # the spy does see the model


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1]) / 1024


def _stream(lv: _Live, head: bytes, piece: bytes, seconds: float) -> bool:
    """Send ``head`` then ``piece`` again and again for ``seconds``; True when the server cut the connection."""
    with socket.create_connection(("127.0.0.1", lv.port), timeout=5) as s:
        s.sendall(head)
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                s.sendall(piece)
        except OSError:
            return True
    return False


def _trickle(lv: _Live, head: bytes, seconds: float) -> bool:
    """A slow-loris body: one byte every 0.2 s after a complete head; True when the server answered and closed."""
    with socket.create_connection(("127.0.0.1", lv.port), timeout=5) as s:
        s.sendall(head)
        s.settimeout(0.2)
        end = time.monotonic() + seconds
        got = b""
        while time.monotonic() < end:
            try:
                s.sendall(b" ")
                chunk = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return got.startswith(b"HTTP/1.1 408")
            if not chunk:
                return got.startswith(b"HTTP/1.1 408")
            got += chunk
    return False


def _pipeline(lv: _Live, n: int) -> bool:
    """``n`` requests on one connection, sent at once, then a keyed prediction: every one answered, in order."""
    raw = lv.exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * n + lv.post(lv.body()), timeout=20)
    return raw.count(b"HTTP/1.1 200") == n + 1 and b'"predictions"' in raw.rpartition(b"HTTP/1.1 200")[2]


STREAMS: list[tuple[str, Callable[[_Live], bool]]] = [
    ("endless-trailers", lambda lv: _stream(lv, lv.post(b"", extra=_TE, length=False) + _chunked(lv.body())[:-2],
                                            b"X-T: b\r\n" * 4000, 1.0)),
    ("endless-header-value", lambda lv: _stream(lv, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ", b"a" * 65536, 1.0)),
    ("endless-headers", lambda lv: _stream(lv, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n" * 4000, 1.0)),
    ("endless-url", lambda lv: _stream(lv, b"GET /healthz?", b"a" * 65536, 1.0)),
    ("endless-tiny-chunks", lambda lv: _stream(lv, lv.post(b"", extra=_TE, length=False), b"1\r\n \r\n" * 8000, 1.0)),
    ("slow-body", lambda lv: _trickle(lv, lv.post(b"", extra=b"Content-Length: 1000\r\n", length=False),
                                      TIMEOUT_S + 2.5)),
    ("pipelined-2000", lambda lv: _pipeline(lv, 2000)),
]


@pytest.mark.parametrize("attack", [s[1] for s in STREAMS], ids=[s[0] for s in STREAMS])
def test_streaming_attack_is_cut_while_others_are_served(live: _Live, attack: Callable[[_Live], bool]) -> None:
    """The attack runs in a thread; meanwhile /healthz and a keyed prediction answer within 2 s each, the
    attacker's connection is cut (or, pipelined, every request answered), and the server grows < 64 MiB."""
    before = _rss_mib()
    outcome: list[bool] = []
    t = threading.Thread(target=lambda: outcome.append(attack(live)))
    t.start()
    try:
        time.sleep(0.3)
        for raw in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", live.post(live.body())):
            t0 = time.monotonic()
            answer = live.exchange(raw, timeout=5)
            assert _status(answer) == 200 and time.monotonic() - t0 < 2.0, (answer[:200], time.monotonic() - t0)
    finally:
        t.join(30)
    assert outcome == [True]
    assert _rss_mib() - before < 64, f"the server grew by {_rss_mib() - before:.0f} MiB"


def test_model_outputs_that_are_no_finite_number_answer_null(client: Any, keys: dict[str, str], sample: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A model's NaN or inf output (JSON has neither) is a null in a 200, journaled as the 200 it is; numpy
    scalar types come out as plain JSON numbers and strings."""
    import numpy as np

    from bastion.serve.loader import LoadedModel

    def odd(self: Any, x: Any) -> dict[str, Any]:
        return {"predictions": [float("nan"), np.float32(1.5).item(), np.str_("yes").item()],
                "probabilities": [float("inf"), float("-inf"), 0.25]}

    monkeypatch.setattr(LoadedModel, "predict", odd)
    r = client.post(f"/v1/models/{sample.name}:predict", content=json.dumps({"instances": [good_row(sample)]}),
                    headers={"Authorization": f"Bearer {keys['predict']}", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [None, 1.5, "yes"] and r.json()["probabilities"] == [None, None, 0.25]
    journal = client.app.state.bastion.journal
    last = [json.loads(line) for line in journal.path.read_text().splitlines() if '"request_id"' in line][-1]
    assert (last["status"], last["outcome"]) == (200, "ok")
