"""The secure model server (FastAPI): every route states its role; predictions are authenticated, limited,
validated, audited (group commit) and measured; the served version follows its alias with hot reload.

``create_app(config)`` builds one process's app; ``app_from_env()`` is the factory uvicorn workers call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import gc
import itertools
import json
import logging
import os
import pickle
import re
import struct
import sys
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bastion.errors import AuthError, BastionError, ConfigError, StoreError
from bastion.serve.audit_sink import AuditJournal, journal_dir
from bastion.serve.auth import ApiKeyStore, Authenticator, Principal, api_keys_path, import_legacy_keyring
from bastion.serve.config import ServeConfig
from bastion.serve.limits import RateLimited, make_limiter
from bastion.serve.loader import LoadedModel, check_trust, load_trusted
from bastion.serve.metrics import CONTENT_TYPE, ServeMetrics
from bastion.serve.validation import InvalidInput, check_media

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["PUBLIC_PATHS", "ServerState", "app_from_env", "create_app"]

log = logging.getLogger("bastion.serve")

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/ui"})
_JSON = "application/json"
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_INLINE_ROWS = 128  # batches up to this size predict on the event loop; bigger ones in a thread with a timeout
# While serving, a background thread (journal fdatasync, alias poll) that wants the GIL makes the event loop
# yield it after this long, not Python's default 5 ms, which would show up as tail latency.
_SWITCH_INTERVAL_S = 0.0005


# The two model routes, as Starlette matches "/v1/models/{name}:predict" (a name is anything but "/")
_MODEL_PATH = re.compile(r"/v1/models/([^/]+):(predict|explain)")
_INTERNAL = b'{"error":"internal","message":"internal error"}'


class _ServerApp(FastAPI):
    """FastAPI with a front door for the model routes: ``POST /v1/models/NAME:predict|explain`` goes straight
    to the handler, past the generic middleware and routing layers (the handler authenticates, limits,
    validates, journals and measures by itself, and turns every error into its answer). Everything else,
    and a model route under a ``root_path``, takes the usual way (to the same handler)."""

    fast_path: Callable[[Scope, Receive, Send], Awaitable[bool]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and scope["type"] == "http" and await fast(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def _json(status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


class _Refused(Exception):
    def __init__(self, status: int, outcome: str, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(doc.get("message", ""))
        self.status, self.outcome, self.doc, self.headers = status, outcome, doc, headers


class _PredictionSink:
    """Feeds the monitoring prediction log without touching the response path.

    Compact records (the validated input matrix as bytes, not per-row dicts) collect on the event loop;
    every ``every_s`` the loop pickles the batch (one C call, ~1 us per request) and writes it to a
    non-blocking pipe to a shipper process (:mod:`bastion.serve._shipper`) that turns it into Arrow
    columns and writes it. No hand-over thread, so nothing of this competes with the event loop for the
    GIL. Best effort: if the shipper dies or falls more than ``max_pending`` bytes behind, records
    are dropped and logged (the audit journal, not this log, is the record of what was served).
    """

    def __init__(self, home: Any, model: str, every_s: float = 0.25, max_pending: int = 256 * 1024 * 1024) -> None:
        import multiprocessing

        from bastion.serve import _shipper

        ctx = multiprocessing.get_context("spawn")
        reader, self._pipe = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_shipper.main, args=(reader, str(home), model),
                                name="bastion-prediction-log", daemon=False)
        self.proc.start()
        reader.close()
        self._fd = self._pipe.fileno()
        with contextlib.suppress(OSError):  # a larger pipe buffer takes a batch in one write (Linux)
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, 1024 * 1024)
        os.set_blocking(self._fd, False)
        self.buf: list[Any] = []
        self.every_s = every_s
        self.max_pending = max_pending
        self._out: collections.deque[memoryview] = collections.deque()
        self._pending = 0
        self._writer_on = False
        self._dropped = 0
        self._timer: asyncio.TimerHandle | None = None
        self._broken = False

    def put(self, record: Any) -> None:
        self.buf.append(record)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.every_s, self._hand_over)

    def _hand_over(self) -> None:
        self._timer = None
        if not self.buf:
            return
        batch, self.buf = self.buf, []
        if self._broken:
            return
        if self._pending > self.max_pending:
            self._dropped += len(batch)
            log.error("prediction log shipper is %s bytes behind; dropped %s request records so far",
                      self._pending, self._dropped)
            return
        data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        # multiprocessing.Connection framing, so the shipper reads it with recv_bytes()
        self._out.append(memoryview(struct.pack("!i", len(data)) + data))
        self._pending += len(data) + 4
        self._write()

    def _write(self) -> None:
        while self._out:
            view = self._out[0]
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                break
            except OSError as e:
                self._fail(e)
                return
            self._pending -= n
            if n == len(view):
                self._out.popleft()
            else:
                self._out[0] = view[n:]
        loop = asyncio.get_running_loop()
        if self._out and not self._writer_on:
            loop.add_writer(self._fd, self._write)
            self._writer_on = True
        elif not self._out and self._writer_on:
            loop.remove_writer(self._fd)
            self._writer_on = False

    def _fail(self, err: BaseException) -> None:
        self._broken = True
        self._out.clear()
        self._pending = 0
        if self._writer_on:
            asyncio.get_running_loop().remove_writer(self._fd)
            self._writer_on = False
        log.error("prediction log shipper is gone (%s); prediction rows are no longer logged", err)

    def close(self) -> None:
        """Send what is left (blocking), then close the pipe: the shipper flushes to Parquet and exits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer_on:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_writer(self._fd)
            self._writer_on = False
        if not self._broken:
            if self.buf:
                data = pickle.dumps(self.buf, protocol=pickle.HIGHEST_PROTOCOL)
                self._out.append(memoryview(struct.pack("!i", len(data)) + data))
                self.buf = []
            try:
                os.set_blocking(self._fd, True)
                for view in self._out:
                    while view:
                        view = view[os.write(self._fd, view):]
            except OSError as e:
                log.error("prediction log shipper is gone (%s); the last rows were not logged", e)
        self._out.clear()
        self._pipe.close()
        self.proc.join(timeout=60)
        if self.proc.is_alive():
            log.error("prediction log shipper did not exit; killing it (its write-ahead log is recovered later)")
            self.proc.kill()


class ServerState:
    """What one server process holds: the verified model (swapped atomically), keys, limits, journal."""

    def __init__(self, config: ServeConfig, project: ProjectHandle, current: LoadedModel) -> None:
        self.config = config
        self.project = project
        self.current = current
        self.metrics = ServeMetrics()
        self.metrics.set_model(current.name, current.version, current.digest)
        jwt = None
        if config.jwt is not None:
            from bastion.serve._jwt import JwtVerifier

            jwt = JwtVerifier(config.jwt)
        if api_keys_path(project).is_file():  # keys of an older Bastion: into the shared database, once
            with project.transaction() as tx:
                import_legacy_keyring(project, tx)
        self.auth = Authenticator(ApiKeyStore(project.db, project=project), jwt)  # rows held to the audit chain
        self.limiter = make_limiter(config.limits, config.workers)
        self.journal: AuditJournal | None = None
        self.sink: _PredictionSink | None = None
        self.ready = False
        self.last_refusal: dict[str, Any] | None = None
        self._reload_lock = threading.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.openapi_dirty = True

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        cur = self.current
        self.journal = AuditJournal(
            journal_dir(self.project.home), durability=self.config.audit_durability,  # type: ignore[arg-type]
            context={"model": cur.name, "alias": cur.alias, "version": cur.version, "digest": cur.digest},
        )
        self.journal.open()
        if self.config.prediction_log:
            self.sink = _PredictionSink(self.project.home, cur.name)
        self.project.audited("serve.start", f"{cur.name}@{cur.alias}", {
            "version": cur.version, "digest": cur.digest, "journal_id": self.journal.journal_id,
            "journal": str(self.journal.path), "trust": cur.trust.to_dict()["checks"],
            "durability": self.journal.durability,
        })
        self.ready = True
        log.info("serving %s (%s) journal %s", cur.ref, cur.digest, self.journal.journal_id)

    def stop(self) -> None:
        self.ready = False
        self.auth.keys.close()
        if self.sink is not None:
            self.sink.close()
            self.ship_logs()
        if self.journal is not None:
            seal = self.journal.close()
            self.project.audited("serve.stop", f"{self.current.name}@{self.current.alias}", seal)
            log.info("stopped; journal %s sealed at %s entries", seal["journal_id"], seal["entries"])
        self.project.close()

    def ship_logs(self) -> None:
        """Move rolled prediction-log files to the object store (teams), where `monitor run` reads them from
        any machine; best effort: what is not shipped now stays on disk and goes next time."""
        if not self.config.prediction_log:
            return
        from bastion.monitor.prediction_log import ship_prediction_logs

        try:
            ship_prediction_logs(self.project, self.current.name)
        except BastionError as e:
            log.error("prediction log not shipped yet: %s", e.message)

    # -- hot reload --------------------------------------------------------------------------
    def reload(self, *, force: bool = False, actor: str = "poll") -> dict[str, Any]:
        """Follow the alias: load and swap in its version if it moved (or re-verify with ``force``)."""
        with self._reload_lock:
            cur = self.current
            ref = f"{cur.name}@{cur.alias}"
            try:
                target = self.project.get_model(ref)
            except BastionError as e:
                return self._refused(ref, None, [f"cannot resolve {ref}: {e}"], actor)
            if target.version == cur.version:
                if not force:
                    return {"status": "unchanged", "serving": cur.ref}
                _, report = check_trust(self.project, target.ref, cur.alias)
                if not report.ok:
                    return self._refused(ref, target.ref, report.reasons, actor)
                return {"status": "unchanged", "serving": cur.ref, "verified": True}
            try:
                new = load_trusted(self.project, ref, margin=self.config.margin, max_rows=self.config.limits.max_rows,
                                   max_depth=self.config.limits.max_depth, target=self.config.target)
            except BastionError as e:
                return self._refused(ref, target.ref, [str(e)], actor)
            if new.version == cur.version:
                return {"status": "unchanged", "serving": cur.ref}
            self.current = new  # atomic swap: requests in flight keep the object they started with
            self.openapi_dirty = True
            self.metrics.set_model(new.name, new.version, new.digest)
            self.metrics.reloads.labels("reloaded").inc()
            self.last_refusal = None
            self.project.audited("serve.reload", ref, {"from": cur.ref, "to": new.ref, "digest": new.digest,
                                                       "by": actor, "journal_id": self._jid()})
            log.info("hot reload: %s -> %s", cur.ref, new.ref)
            return {"status": "reloaded", "from": cur.ref, "serving": new.ref}

    def _jid(self) -> str | None:
        return self.journal.journal_id if self.journal is not None else None

    def _refused(self, ref: str, target: str | None, reasons: list[str], actor: str) -> dict[str, Any]:
        doc = {"status": "refused", "serving": self.current.ref, "candidate": target, "reasons": reasons}
        self.metrics.reloads.labels("refused").inc()
        key = {"candidate": target, "reasons": reasons}
        if self.last_refusal != key or actor != "poll":  # audit each distinct refusal once, not every poll
            self.last_refusal = key
            with contextlib.suppress(BastionError):
                self.project.audited("serve.reload.refused", ref, {**doc, "by": actor, "journal_id": self._jid()})
            log.error("refusing to switch %s to %s; still serving %s: %s", ref, target, self.current.ref,
                      "; ".join(reasons))
        return doc

    async def poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.poll_s)
            try:
                await loop.run_in_executor(None, self.reload)
                await loop.run_in_executor(None, self.ship_logs)
            except Exception:  # the poller must survive anything (a bad DB moment), and say so
                log.exception("alias poll failed")


def _principal(state: ServerState, authorization: str | None, role: str) -> Principal:
    try:
        p = state.auth.authenticate(authorization)
    except AuthError as e:
        state.metrics.auth_rejected.labels("unauthenticated").inc()
        raise _Refused(401, "unauthorized", {"error": "unauthorized", "message": str(e)},
                       {"WWW-Authenticate": "Bearer"}) from None
    if role != "any" and not p.allows(role):
        state.metrics.auth_rejected.labels("forbidden").inc()
        raise _Refused(403, "unauthorized",
                       {"error": "forbidden", "message": f"this credential lacks the '{role}' role"}) from None
    return p


async def _read_body(receive: Receive, cl: str | None, limit: int) -> bytes:
    """The request body from the ASGI ``receive`` channel; ``cl`` is the Content-Length header, if any."""
    if cl is not None:
        try:
            if int(cl) > limit:
                raise InvalidInput(413, f"The request body is larger than {limit} bytes.")
        except ValueError:
            raise InvalidInput(400, "Malformed Content-Length header.") from None
    # ASGI messages straight from the server (Starlette's stream() wraps the same loop in a generator)
    chunks: list[bytes] = []
    n = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise InvalidInput(400, "The client disconnected before sending the whole body.")
        chunk = msg.get("body", b"")
        n += len(chunk)
        if n > limit:
            raise InvalidInput(413, f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not msg.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Deadlines:
    """Request timeouts without a timer per request: handlers register their task with a deadline (a dict
    entry), and one watchdog per process cancels the overdue ones a few times a second."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick_s = min(0.25, timeout_s / 4)
        self.inflight: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()

    def enter(self) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None
        self.inflight[task] = time.monotonic() + self.timeout_s
        return task

    def check(self, task: asyncio.Task[Any]) -> None:
        """Raise TimeoutError when ``task`` is past its deadline: synchronous steps (parsing, validation)
        cannot be cancelled mid-way, so the handler asks between them."""
        deadline = self.inflight.get(task)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError

    def leave(self, task: asyncio.Task[Any]) -> None:
        self.inflight.pop(task, None)

    def timed_out(self, task: asyncio.Task[Any]) -> bool:
        """After a CancelledError: was it the watchdog's (then the task is uncancelled) or someone else's?"""
        if task in self.expired:
            self.expired.discard(task)
            task.uncancel()
            return True
        return False

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            for task, deadline in list(self.inflight.items()):
                if deadline <= now and task not in self.expired:
                    self.inflight.pop(task, None)
                    self.expired.add(task)
                    task.cancel()


def create_app(
    config: ServeConfig, *, project: ProjectHandle | None = None, preloaded: LoadedModel | None = None
) -> FastAPI:
    """Build the app for one server process; verifies and loads the model now (raises if refused)."""
    from bastion.project import open_project

    project = project or open_project(config.project_root)
    current = preloaded or load_trusted(project, config.ref, margin=config.margin,
                                        max_rows=config.limits.max_rows, max_depth=config.limits.max_depth,
                                        target=config.target)
    state = ServerState(config, project, current)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, state.start)
        # Move everything loaded so far (model, libraries) out of the collector's sight: full collections
        # then scan only request garbage, which keeps them from showing up as 100 ms tail latencies.
        gc.collect()
        gc.freeze()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
        if config.poll_s > 0:
            state._poller = asyncio.create_task(state.poll())
        watchdog = asyncio.create_task(deadlines.watch())
        try:
            yield
        finally:
            for t in (state._poller, watchdog):
                if t is not None:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
            sys.setswitchinterval(switch_interval)
            state.stop()

    # No trailing-slash redirects: Starlette builds their absolute URL from the Host header (reflected).
    app = _ServerApp(title="Bastion model server", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan, redirect_slashes=False)
    app.state.bastion = state
    roles: dict[tuple[str, str], str] = {}
    app.state.route_roles = roles
    limits = config.limits
    deadlines = _Deadlines(limits.timeout_s)
    rid_prefix = uuid.uuid4().hex[:16] + "-"  # unique per process; a counter is cheaper than urandom per request
    rid_counter = itertools.count(1)

    async def model_call(authorization: str | None, content_length: str | None, receive: Receive,
                         client: str | None, name: str, route: str, role: str,
                         fn: Callable[[LoadedModel, Any], dict[str, Any]],
                         content_type: str | None = None,
                         content_encoding: str | None = None) -> tuple[int, bytes, dict[str, str]]:
        """One model request, from its parts (so the Starlette routes and the ASGI fast path share it);
        returns the status, the JSON body and the headers of the answer."""
        t0 = time.perf_counter()
        rid = f"{rid_prefix}{next(rid_counter):x}"
        m = state.current
        principal: Principal | None = None
        rows: list[tuple[Any, ...]] = []
        reading = False
        x: Any = None
        result: dict[str, Any] | None = None
        outcome, status, headers = "ok", 200, {"x-request-id": rid}
        doc: dict[str, Any]
        try:
            if not state.ready or state.journal is None or not state.journal.is_open:
                raise _Refused(503, "error", {"error": "unavailable", "message": "the server is not ready"})
            principal = _principal(state, authorization, role)
            if name != m.name:
                raise _Refused(404, "invalid", {"error": "not_found", "message": f"this server serves '{m.name}'"})
            try:
                state.limiter.acquire(principal.key_id)
            except RateLimited as e:
                state.metrics.rate_limited.labels(e.reason).inc()
                raise _Refused(429, "rate_limited", {"error": "rate_limited", "message": f"{e.reason} limit reached"},
                               {"Retry-After": str(e.retry_after)}) from None
            task = deadlines.enter()
            reading = True
            try:
                check_media(content_type, content_encoding)
                body = await _read_body(receive, content_length, limits.max_body_bytes)
                reading = False
                rows = m.schema.parse(body)
                x = m.matrix(rows)
                deadlines.check(task)  # --timeout covers reading, parsing and validation too
                if len(rows) <= _INLINE_ROWS:
                    result = fn(m, x)  # synchronous: no await, so nothing else runs meanwhile
                else:
                    result = await asyncio.get_running_loop().run_in_executor(None, fn, m, x)
            except asyncio.CancelledError:
                if deadlines.timed_out(task):
                    raise TimeoutError from None
                raise
            finally:
                deadlines.leave(task)
                state.limiter.release(principal.key_id)
            doc = {"model": m.name, "version": m.version, "request_id": rid, **result}
            state.metrics.rows.inc(len(rows))
        except _Refused as e:
            outcome, status, doc = e.outcome, e.status, e.doc
            headers.update(e.headers or {})
        except InvalidInput as e:
            outcome, status, doc = "invalid", e.status, e.to_dict()
            state.metrics.validation_failures.labels(route).inc()
        except TimeoutError:
            if reading:  # the client, not the model, was slow: its body did not arrive in time (slow-loris body)
                outcome, status = "invalid", 408
                doc = {"error": "timeout", "message": f"the body did not arrive within {limits.timeout_s}s"}
                headers["connection"] = "close"
            else:
                outcome, status, doc = "error", 504, {"error": "timeout", "message": f"over {limits.timeout_s}s"}
        except ConfigError as e:  # e.g. explain on a non-linear model
            outcome, status, doc = "invalid", 501, {"error": "not_supported", "message": str(e)}
        except Exception as e:
            # The exception's text can quote input values (an encoder's unknown category, say), so the log
            # gets its type and where it was raised, never its message.
            log.error("request %s failed: %s\n%s", rid, type(e).__qualname__,
                      "".join(traceback.format_tb(e.__traceback__)).rstrip())
            outcome, status, doc = "error", 500, {"error": "internal", "message": "internal error", "request_id": rid}
        latency = time.perf_counter() - t0
        ts = time.time()
        key_id = principal.key_id if principal is not None else None
        journal = state.journal
        if journal is not None and journal.is_open:
            try:
                await journal.record({"request_id": rid, "ts": ts, "key_id": key_id, "route": route,
                                      "model": m.name, "version": m.version, "outcome": outcome, "status": status,
                                      "rows": len(rows), "latency_ms": round(latency * 1000, 3),
                                      "client": client})
            except StoreError:
                status, outcome = 503, "error"
                doc = {"error": "unavailable", "message": "the audit journal is unavailable; nothing was served"}
        state.metrics.observe(route, outcome, latency)
        if state.sink is not None:
            res = result if outcome == "ok" and result is not None else {}
            inputs: Any = None
            if res:  # a float matrix travels as its bytes (pickled as one copy, not as an ndarray object)
                inputs = (x.tobytes(), x.shape[1]) if isinstance(x, np.ndarray) and x.dtype == np.float64 else rows
            state.sink.put((rid, ts, m.version, key_id, outcome, latency * 1000, m.schema.log_columns, inputs,
                            res.get("predictions"), res.get("probabilities")))
        if config.access_log:
            log.info("request", extra={"request_id": rid, "route": route, "status": status, "key_id": key_id,
                                       "latency_ms": round(latency * 1000, 3)})
        try:
            out = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        except ValueError:  # a model output that is no finite number (NaN, inf): JSON has no such value, null
            out = json.dumps(_finite(doc), separators=(",", ":"), allow_nan=False).encode()
        return status, out, headers

    async def model_response(request: Request, name: str, route: str, role: str,
                             fn: Callable[[LoadedModel, Any], dict[str, Any]]) -> Response:
        status, body, headers = await model_call(
            request.headers.get("authorization"), request.headers.get("content-length"), request.receive,
            request.client.host if request.client else None, name, route, role, fn,
            request.headers.get("content-type"), request.headers.get("content-encoding"))
        return Response(body, status_code=status, media_type=_JSON, headers=headers)

    def _predict(m: LoadedModel, x: Any) -> dict[str, Any]:
        return m.predict(x)

    def _explain(m: LoadedModel, x: Any) -> dict[str, Any]:
        return {**m.predict(x), **m.explain(x)}

    def route(path: str, method: str, role: str | None, **kw: Any) -> Callable[[Any], Any]:
        def deco(fn: Any) -> Any:
            extra = dict(kw.pop("openapi_extra", {}) or {})
            if role is not None:
                roles[(method, path)] = role
                extra["x-bastion-role"] = role
                extra["security"] = [{"bearer": []}]
            app.add_api_route(path, fn, methods=[method], openapi_extra=extra, **kw)
            return fn
        return deco

    bad_responses = {"400": {"description": "Unreadable body"}, "401": {"description": "No valid credential"},
                     "403": {"description": "Credential lacks the role"}, "404": {"description": "Other model"},
                     "413": {"description": "Body too large"}, "422": {"description": "Invalid fields"},
                     "429": {"description": "Rate or concurrency limit"},
                     "503": {"description": "Not ready / audit unavailable"}}

    @route("/v1/models/{name}:predict", "POST", "predict", summary="Predict (role: predict)",
           responses=bad_responses, openapi_extra={"requestBody": {"required": True, "content": {_JSON: {
               "schema": {"$ref": "#/components/schemas/PredictRequest"}}}}})
    async def predict(request: Request, name: str) -> Response:
        return await model_response(request, name, "predict", "predict", _predict)

    @route("/v1/models/{name}:explain", "POST", "explain", summary="Explain (role: explain)",
           responses={**bad_responses, "501": {"description": "Model is not linear"}},
           openapi_extra={"requestBody": {"required": True, "content": {_JSON: {
               "schema": {"$ref": "#/components/schemas/PredictRequest"}}}}})
    async def explain(request: Request, name: str) -> Response:
        return await model_response(request, name, "explain", "explain", _explain)

    # The two model routes also go in front as plain Starlette routes, so requests skip FastAPI's dependency
    # solving (the handlers read the request themselves); the FastAPI routes above document them.
    async def predict_raw(request: Request) -> Response:
        return await model_response(request, request.path_params["name"], "predict", "predict", _predict)

    async def explain_raw(request: Request) -> Response:
        return await model_response(request, request.path_params["name"], "explain", "explain", _explain)

    app.router.routes[:0] = [
        Route("/v1/models/{name}:predict", predict_raw, methods=["POST"], include_in_schema=False),
        Route("/v1/models/{name}:explain", explain_raw, methods=["POST"], include_in_schema=False),
    ]

    async def fast_path(scope: Scope, receive: Receive, send: Send) -> bool:
        """The model routes as plain ASGI (see :class:`_ServerApp`); False: not a model route, go the usual way."""
        if scope["method"] != "POST" or scope.get("root_path"):
            return False
        hit = _MODEL_PATH.fullmatch(scope["path"])
        if hit is None:
            return False
        authorization = content_length = content_type = content_encoding = None
        for k, v in scope["headers"]:  # the first of repeated headers, as Starlette's Headers.get
            if k == b"authorization":
                if authorization is None:
                    authorization = v.decode("latin-1")
            elif k == b"content-length":
                if content_length is None:
                    content_length = v.decode("latin-1")
            elif k == b"content-type":
                if content_type is None:
                    content_type = v.decode("latin-1")
            elif k == b"content-encoding" and content_encoding is None:
                content_encoding = v.decode("latin-1")
        client = scope.get("client")
        kind = hit.group(2)
        try:
            status, body, headers = await model_call(
                authorization, content_length, receive, client[0] if client else None, hit.group(1), kind, kind,
                _predict if kind == "predict" else _explain, content_type, content_encoding)
        except Exception as e:  # model_call answers every error itself; this is a bug, and says only its type
            log.error("model request failed outside its handler: %s", type(e).__qualname__)
            status, body, headers = 500, _INTERNAL, {}
        raw = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return True

    app.fast_path = fast_path

    async def guarded(request: Request, role: str, fn: Callable[[Principal], Any]) -> Response:
        try:
            p = _principal(state, request.headers.get("authorization"), role)
        except _Refused as e:
            state.metrics.observe(request.url.path, e.outcome, 0.0)
            return _json(e.status, e.doc, e.headers)
        out = fn(p)
        if asyncio.iscoroutine(out):
            out = await out
        return out if isinstance(out, Response) else _json(200, out)

    @route("/v1/admin/reload", "POST", "admin", summary="Re-resolve the alias now (role: admin)",
           responses={"401": {"description": "No valid credential"}, "403": {"description": "Not admin"},
                      "409": {"description": "Refused; the old version keeps serving"}})
    async def admin_reload(request: Request) -> Response:
        async def run(p: Principal) -> Response:
            doc = await asyncio.get_running_loop().run_in_executor(
                None, lambda: state.reload(force=True, actor=p.key_id))
            return _json(409 if doc["status"] == "refused" else 200, doc)
        return await guarded(request, "admin", run)

    @route("/v1/admin/status", "GET", "admin", summary="What is served and why it is trusted (role: admin)",
           responses={"401": {"description": "No valid credential"}, "403": {"description": "Not admin"}})
    async def admin_status(request: Request) -> Response:
        def run(_: Principal) -> dict[str, Any]:
            m = state.current
            return {"serving": m.ref, "alias": m.alias, "digest": m.digest, "trust": m.trust.to_dict(),
                    "inputs": [s.to_dict() for s in m.schema.specs], "journal": state._jid(),
                    "last_refused_reload": state.last_refusal}
        return await guarded(request, "admin", run)

    @route("/metrics", "GET", "admin", summary="Prometheus metrics (role: admin)",
           responses={"401": {"description": "No valid credential"}, "403": {"description": "Not admin"}})
    async def metrics(request: Request) -> Response:
        return await guarded(request, "admin",
                             lambda _: Response(state.metrics.render(), media_type=CONTENT_TYPE))

    @route("/openapi.json", "GET", "any", summary="This OpenAPI document (any role)", include_in_schema=False)
    async def openapi_doc(request: Request) -> Response:
        return await guarded(request, "any", lambda _: _json(200, openapi()))

    @route("/healthz", "GET", None, summary="Liveness (no credential)")
    async def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @route("/readyz", "GET", None, summary="Readiness (no credential)")
    async def readyz() -> Response:
        ok = state.ready and state.journal is not None and state.journal.is_open
        return _json(200 if ok else 503, {"status": "ready" if ok else "not ready"})

    def openapi() -> dict[str, Any]:
        if state.openapi_dirty or app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                              description=f"Serves {state.current.name}@{state.current.alias}.")
            comps = doc.setdefault("components", {})
            schema = state.current.schema.json_schema()
            defs = schema.pop("$defs", {})
            schemas = comps.setdefault("schemas", {})
            for k, v in defs.items():
                schemas[k] = _rewrite_refs(v)
            schemas["PredictRequest"] = _rewrite_refs(schema)
            comps["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for item in doc.get("paths", {}).values():  # this server serves exactly one model name
                for op in item.values():
                    for param in op.get("parameters", []):
                        if param.get("name") == "name" and param.get("in") == "path":
                            param["schema"] = {"type": "string", "enum": [state.current.name]}
            app.openapi_schema = doc
            state.openapi_dirty = False
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _check_roles(app)
    if config.ui:
        from bastion.ui import create_ui_app

        async def ui_home(request: Request) -> Response:  # a relative Location: never built from Host
            return Response(status_code=308, headers={"Location": "/ui/"})

        app.router.routes.append(Route("/ui", ui_home, methods=["GET", "HEAD"], include_in_schema=False))
        app.mount("/ui", create_ui_app(config.project_root))
    return app


def _finite(node: Any) -> Any:
    """``node`` with every float that is not finite (a model's NaN or inf output) replaced by None."""
    if isinstance(node, float):
        return node if node == node and node not in (float("inf"), float("-inf")) else None
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    return node


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" and isinstance(v, str)
                    else _rewrite_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _check_roles(app: FastAPI) -> None:
    """Fail closed at start-up: a route without a declared role (and not public) is a bug."""
    roles = app.state.route_roles
    for r in app.routes:
        if isinstance(r, Route) and r.path not in PUBLIC_PATHS:
            for method in r.methods or ():
                if (method, r.path) not in roles:
                    raise ConfigError(f"Route {method} {r.path} declares no role; refusing to start.")


def app_from_env() -> FastAPI:
    """The app factory uvicorn workers call (``bastion.serve.app:app_from_env``, ``factory=True``)."""
    from bastion.serve._logging import configure_json_logging

    configure_json_logging()
    return create_app(ServeConfig.from_env())
