"""The secure model server (FastAPI): every route states its role; predictions are authenticated, limited,
validated, audited (group commit) and measured; the served version follows its alias with hot reload.

``create_app(config)`` builds one process's app; ``app_from_env()`` is the factory uvicorn workers call.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import pickle
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

from bastion.errors import AuthError, BastionError, ConfigError, StoreError
from bastion.serve.audit_sink import AuditJournal, journal_dir
from bastion.serve.auth import ApiKeyStore, Authenticator, Principal, api_keys_path
from bastion.serve.config import ServeConfig
from bastion.serve.limits import Limiter, RateLimited
from bastion.serve.loader import LoadedModel, check_trust, load_trusted
from bastion.serve.metrics import CONTENT_TYPE, ServeMetrics
from bastion.serve.validation import InvalidInput

__all__ = ["PUBLIC_PATHS", "ServerState", "app_from_env", "create_app"]

log = logging.getLogger("bastion.serve")

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
_JSON = "application/json"
_INLINE_ROWS = 128  # batches up to this size predict on the event loop; bigger ones in a thread with a timeout


def _json(status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


class _Refused(Exception):
    def __init__(self, status: int, outcome: str, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(doc.get("message", ""))
        self.status, self.outcome, self.doc, self.headers = status, outcome, doc, headers


class _PredictionSink:
    """Feeds the monitoring prediction log without touching the response path.

    Compact records collect on the event loop; every ``every_s`` a thread pickles the batch and pipes it
    to a shipper process (:mod:`bastion.serve._shipper`) that expands and writes it, so per-row JSON and
    Parquet rolls cost the server neither latency nor GIL time. Best effort: if the shipper dies, records
    are dropped and logged (the audit journal, not this log, is the record of what was served).
    """

    def __init__(self, home: Any, model: str, every_s: float = 0.25) -> None:
        import multiprocessing

        from bastion.serve import _shipper

        ctx = multiprocessing.get_context("spawn")
        reader, self._pipe = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_shipper.main, args=(reader, str(home), model),
                                name="bastion-prediction-log", daemon=False)
        self.proc.start()
        reader.close()
        self.q: queue.SimpleQueue[list[Any] | None] = queue.SimpleQueue()
        self.buf: list[Any] = []
        self.every_s = every_s
        self._timer: asyncio.TimerHandle | None = None
        self._broken = False
        self.thread = threading.Thread(target=self._run, name="bastion-prediction-log", daemon=True)
        self.thread.start()

    def put(self, record: Any) -> None:
        self.buf.append(record)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.every_s, self._hand_over)

    def _hand_over(self) -> None:
        self._timer = None
        if self.buf:
            batch, self.buf = self.buf, []
            self.q.put(batch)

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self._broken:
                continue
            try:
                self._pipe.send_bytes(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
            except (OSError, ValueError) as e:
                self._broken = True
                log.error("prediction log shipper is gone (%s); prediction rows are no longer logged", e)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.buf:
            self.q.put(self.buf)
            self.buf = []
        self.q.put(None)
        self.thread.join(timeout=30)
        self._pipe.close()  # EOF: the shipper flushes to Parquet and exits
        self.proc.join(timeout=60)
        if self.proc.is_alive():
            log.error("prediction log shipper did not exit; terminating it")
            self.proc.terminate()


class ServerState:
    """What one server process holds: the verified model (swapped atomically), keys, limits, journal."""

    def __init__(self, config: ServeConfig, project: Any, current: LoadedModel) -> None:
        self.config = config
        self.project = project
        self.current = current
        self.metrics = ServeMetrics()
        self.metrics.set_model(current.name, current.version, current.digest)
        jwt = None
        if config.jwt is not None:
            from bastion.serve._jwt import JwtVerifier

            jwt = JwtVerifier(config.jwt)
        self.auth = Authenticator(ApiKeyStore(api_keys_path(project)), jwt)
        self.limiter = Limiter(config.limits.per_worker(config.workers))
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
        if self.sink is not None:
            self.sink.close()
        if self.journal is not None:
            seal = self.journal.close()
            self.project.audited("serve.stop", f"{self.current.name}@{self.current.alias}", seal)
            log.info("stopped; journal %s sealed at %s entries", seal["journal_id"], seal["entries"])
        self.project.close()

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
            except Exception:  # the poller must survive anything (a bad DB moment), and say so
                log.exception("alias poll failed")


def _principal(state: ServerState, request: Request, role: str) -> Principal:
    try:
        p = state.auth.authenticate(request.headers.get("authorization"))
    except AuthError as e:
        state.metrics.auth_rejected.labels("unauthenticated").inc()
        raise _Refused(401, "unauthorized", {"error": "unauthorized", "message": str(e)},
                       {"WWW-Authenticate": "Bearer"}) from None
    if role != "any" and not p.allows(role):
        state.metrics.auth_rejected.labels("forbidden").inc()
        raise _Refused(403, "unauthorized",
                       {"error": "forbidden", "message": f"this credential lacks the '{role}' role"}) from None
    return p


async def _read_body(request: Request, limit: int) -> bytes:
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            if int(cl) > limit:
                raise InvalidInput(413, f"The request body is larger than {limit} bytes.")
        except ValueError:
            raise InvalidInput(400, "Malformed Content-Length header.") from None
    chunks: list[bytes] = []
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise InvalidInput(413, f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: ServeConfig, *, project: Any = None, preloaded: LoadedModel | None = None) -> FastAPI:
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
        if config.poll_s > 0:
            state._poller = asyncio.create_task(state.poll())
        try:
            yield
        finally:
            if state._poller is not None:
                state._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await state._poller
            state.stop()

    app = FastAPI(title="Bastion model server", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.bastion = state
    roles: dict[tuple[str, str], str] = {}
    app.state.route_roles = roles
    limits = config.limits
    rid_prefix = uuid.uuid4().hex[:16] + "-"  # unique per process; a counter is cheaper than urandom per request
    rid_counter = itertools.count(1)

    async def model_call(request: Request, name: str, route: str, role: str,
                         fn: Callable[[LoadedModel, Any], dict[str, Any]]) -> Response:
        t0 = time.perf_counter()
        rid = f"{rid_prefix}{next(rid_counter):x}"
        m = state.current
        principal: Principal | None = None
        rows: list[tuple[Any, ...]] = []
        result: dict[str, Any] | None = None
        outcome, status, headers = "ok", 200, {"x-request-id": rid}
        doc: dict[str, Any]
        try:
            if not state.ready or state.journal is None or not state.journal.is_open:
                raise _Refused(503, "error", {"error": "unavailable", "message": "the server is not ready"})
            principal = _principal(state, request, role)
            if name != m.name:
                raise _Refused(404, "invalid", {"error": "not_found", "message": f"this server serves '{m.name}'"})
            try:
                state.limiter.acquire(principal.key_id)
            except RateLimited as e:
                state.metrics.rate_limited.labels(e.reason).inc()
                raise _Refused(429, "rate_limited", {"error": "rate_limited", "message": f"{e.reason} limit reached"},
                               {"Retry-After": str(e.retry_after)}) from None
            try:
                async with asyncio.timeout(limits.timeout_s):
                    body = await _read_body(request, limits.max_body_bytes)
                    rows = m.schema.parse(body)
                    x = m.matrix(rows)
                    if len(rows) <= _INLINE_ROWS:
                        result = fn(m, x)
                    else:
                        result = await asyncio.get_running_loop().run_in_executor(None, fn, m, x)
            finally:
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
            outcome, status, doc = "error", 504, {"error": "timeout", "message": f"over {limits.timeout_s}s"}
        except ConfigError as e:  # e.g. explain on a non-linear model
            outcome, status, doc = "invalid", 501, {"error": "not_supported", "message": str(e)}
        except Exception:
            log.exception("request %s failed", rid)
            outcome, status, doc = "error", 500, {"error": "internal", "message": "internal error", "request_id": rid}
        latency = time.perf_counter() - t0
        key_id = principal.key_id if principal is not None else None
        journal = state.journal
        if journal is not None and journal.is_open:
            try:
                await journal.record({"request_id": rid, "ts": time.time(), "key_id": key_id, "route": route,
                                      "model": m.name, "version": m.version, "outcome": outcome, "status": status,
                                      "rows": len(rows), "latency_ms": round(latency * 1000, 3),
                                      "client": request.client.host if request.client else None})
            except StoreError:
                status, outcome = 503, "error"
                doc = {"error": "unavailable", "message": "the audit journal is unavailable; nothing was served"}
        state.metrics.observe(route, outcome, latency)
        if state.sink is not None:
            res = result if outcome == "ok" and result is not None else {}
            state.sink.put((rid, m.version, key_id, outcome, latency * 1000, m.schema.features, m.schema.sensitive,
                            rows if res else None, res.get("predictions"), res.get("probabilities")))
        if config.access_log:
            log.info("request", extra={"request_id": rid, "route": route, "status": status, "key_id": key_id,
                                       "latency_ms": round(latency * 1000, 3)})
        return _json(status, doc, headers)

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
        return await model_call(request, name, "predict", "predict", _predict)

    @route("/v1/models/{name}:explain", "POST", "explain", summary="Explain (role: explain)",
           responses={**bad_responses, "501": {"description": "Model is not linear"}},
           openapi_extra={"requestBody": {"required": True, "content": {_JSON: {
               "schema": {"$ref": "#/components/schemas/PredictRequest"}}}}})
    async def explain(request: Request, name: str) -> Response:
        return await model_call(request, name, "explain", "explain", _explain)

    async def guarded(request: Request, role: str, fn: Callable[[Principal], Any]) -> Response:
        try:
            p = _principal(state, request, role)
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

        app.mount("/ui", create_ui_app(config.project_root))
    return app


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" and isinstance(v, str)
                    else _rewrite_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _check_roles(app: FastAPI) -> None:
    """Fail closed at start-up: a route without a declared role (and not public) is a bug."""
    from fastapi.routing import APIRoute

    roles = app.state.route_roles
    for r in app.routes:
        if isinstance(r, APIRoute) and r.path not in PUBLIC_PATHS:
            for method in r.methods or ():
                if (method, r.path) not in roles:
                    raise ConfigError(f"Route {method} {r.path} declares no role; refusing to start.")


def app_from_env() -> FastAPI:
    """The app factory uvicorn workers call (``bastion.serve.app:app_from_env``, ``factory=True``)."""
    from bastion.serve._logging import configure_json_logging

    configure_json_logging()
    return create_app(ServeConfig.from_env())
