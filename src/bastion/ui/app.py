"""The dashboard as a FastAPI app: server-rendered pages over one project, with login, roles and CSRF.

``create_ui_app(project_root)`` builds it; ``bastion ui`` runs it with uvicorn, and a server may mount it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from bastion.audit.refusals import record_refusal
from bastion.errors import AuthError, BastionError, NotFoundError, PolicyViolation
from bastion.project import Project, open_project
from bastion.ui import _views
from bastion.ui._session import COOKIE, LoginThrottle, SessionStore
from bastion.ui.users import User, UserStore

__all__ = ["SECURITY_HEADERS", "create_ui_app"]

log = logging.getLogger("bastion.ui")

_HERE = Path(__file__).parent
_STATIC = _HERE / "static"
_LOGIN_COOKIE = "bastion_login_csrf"
_MAX_FORM = 16 * 1024
_FORM_TIMEOUT_S = 10.0
_MEDIA = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

SECURITY_HEADERS = {
    # Plotly draws with inline style attributes, hence 'unsafe-inline' for styles only; no inline script runs.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class _Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def create_ui_app(
    project_root: str | Path | None = None,
    *,
    secure_cookies: bool | None = None,
    login_limit: int = 20,
    account_login_limit: int = 50,
    account_address_login_limit: int = 5,
    login_window: float = 300.0,
    session_max_age: int = 8 * 3600,
) -> FastAPI:
    """The dashboard app for the project at ``project_root``.

    Parameters
    ----------
    secure_cookies
        Mark cookies ``Secure``; default: only when the request came over HTTPS.
    account_address_login_limit, login_limit, account_login_limit, login_window
        Failed logins allowed for one account from one client address, per client address (any accounts),
        and per account (from any addresses: only a distributed guess reaches it) within ``login_window``
        seconds (counted in the project database, so shared by every worker and dashboard process).
    """
    project = open_project(project_root)
    users = UserStore(project)
    sessions = SessionStore(project, max_age=session_max_age)
    throttle = LoginThrottle(project, pair_limit=account_address_login_limit, addr_limit=login_limit,
                             user_limit=account_login_limit, window=login_window)
    actors: dict[str, Project] = {}
    actors_lock = threading.Lock()
    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["fmt"] = _fmt
    env.filters["sig"] = _sig
    env.globals["quote"] = lambda s: quote(str(s), safe="")

    # No trailing-slash redirects: Starlette builds their absolute URL from the Host header (reflected).
    app = FastAPI(title="Bastion dashboard", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.project = project

    def as_actor(user: User) -> Project:
        """The project seen as the logged-in user, so the core's audit entries name them."""
        with actors_lock:
            if user.name not in actors:
                actors[user.name] = Project(dataclasses.replace(project.settings, user=user.name))
            return actors[user.name]

    def secure(request: Request) -> bool:
        return secure_cookies if secure_cookies is not None else request.url.scheme == "https"

    def session(request: Request) -> dict[str, Any] | None:
        """The request's server-side session (a DB read), with its user; None when absent or ended."""
        cookie = request.cookies.get(COOKIE)
        sess = sessions.get(cookie)
        if sess is None:
            return None
        sess["user"] = User(sess["u"], sess["r"])
        sess["cookie"] = cookie
        return sess

    def render(request: Request, template: str, sess: dict[str, Any] | None, code: int = 200, **ctx: Any) -> Response:
        root = _root(request)
        body = env.get_template(template).render(
            user=(sess or {}).get("user"), csrf=(sess or {}).get("csrf", ""), root=root,
            path=request.url.path[len(root):] or "/", **ctx
        )
        return HTMLResponse(body, status_code=code)

    def page(fn: Callable[..., Response]) -> Callable[..., Awaitable[Response]]:
        """A GET page: needs a session, else redirects to the login page."""

        async def wrapper(request: Request) -> Response:
            sess = await run_in_threadpool(session, request)
            if sess is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(_root(request) + "/login?" + urlencode({"next": target}), status_code=303)
            try:
                return await _call(fn, request, sess)
            except BastionError as e:
                return error_page(request, sess, e)

        wrapper.__name__ = fn.__name__
        return wrapper

    def action(role: str) -> Callable[[Callable[..., Response]], Callable[..., Awaitable[Response]]]:
        """A POST action: needs a session (401), the role (403) and the session's CSRF token (403)."""

        def deco(fn: Callable[..., Response]) -> Callable[..., Awaitable[Response]]:
            async def wrapper(request: Request) -> Response:
                try:
                    form = await _form(request)
                    sess = await run_in_threadpool(session, request)
                    if sess is None:
                        raise _Denied(401, "Not logged in.")
                    if not secrets.compare_digest(form.get("csrf", ""), sess["csrf"]):
                        raise _Denied(403, "The form's CSRF token is missing or wrong; reload the page and retry.")
                    if not sess["user"].can(role):
                        raise _Denied(403, f"This action needs the {role} role; you are {sess['user'].role}.")
                except _Denied as d:
                    log.warning("ui refused %s %s: %s", request.method, request.url.path, d.message)
                    return _denied(d)
                try:
                    return await _call(fn, request, sess, form)
                except BastionError as e:
                    return error_page(request, sess, e)

            wrapper.__name__ = fn.__name__
            return wrapper

        return deco

    def error_page(request: Request, sess: dict[str, Any] | None, e: BastionError) -> Response:
        status = 404 if isinstance(e, NotFoundError) else 409 if isinstance(e, PolicyViolation) else 400
        return render(request, "error.html", sess, code=status, message=e.message)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if secure(request):
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    # -- login --------------------------------------------------------------------------------------
    @app.get("/login")
    async def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        nxt = _safe_next(request.query_params.get("next"), _root(request))
        resp = render(request, "login.html", None, login_csrf=token, next=nxt)
        resp.set_cookie(_LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=secure(request),
                        path=_root(request) + "/login")
        return resp

    @app.post("/login")
    async def login(request: Request) -> Response:
        ip = request.client.host if request.client else "unknown"
        try:
            form = await _form(request)
        except _Denied as d:
            return _denied(d)
        cookie = request.cookies.get(_LOGIN_COOKIE, "")
        if not cookie or not secrets.compare_digest(form.get("csrf", ""), cookie):
            return PlainTextResponse("The login form's CSRF token is missing or wrong; reload it.", status_code=403)
        raw_name = form.get("username", "")
        name = raw_name[:64]  # for the throttle and the audit log; no user name is longer
        verdict = await run_in_threadpool(throttle.check, ip, name)
        if verdict.scope is not None:
            # aggregated: the first blocked try of a minute is written at once, the rest as one count
            subject = f"ip:{ip}" if verdict.scope == "address" else f"user:{name}"
            await run_in_threadpool(record_refusal, project, "ui.login.blocked", subject,
                                    f"too many failed logins for this {verdict.scope}",
                                    {"user": name, "ip": ip, "scope": verdict.scope})
            return PlainTextResponse(f"Too many failed logins for this {verdict.scope}; wait and retry.",
                                     status_code=429, headers={"Retry-After": str(verdict.retry_after)})
        try:
            user = await run_in_threadpool(users.authenticate, raw_name, form.get("password", ""))
        except AuthError as e:
            exists = await run_in_threadpool(users.exists, raw_name)
            await run_in_threadpool(throttle.failed, ip, name if exists else None)
            await run_in_threadpool(record_refusal, project, "ui.login.failed", f"user:{name}",
                                    "unknown user or wrong password", {"ip": ip})
            token = secrets.token_urlsafe(32)
            resp = render(request, "login.html", None, code=401, error=e.message, login_csrf=token,
                          next=_safe_next(form.get("next"), _root(request)))
            resp.set_cookie(_LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=secure(request),
                            path=_root(request) + "/login")
            return resp
        await run_in_threadpool(throttle.succeeded, ip, user.name)
        await run_in_threadpool(as_actor(user).audited, "ui.login", f"user:{user.name}", {"ip": ip, "role": user.role})
        value, _ = await run_in_threadpool(sessions.new, user.name, user.role)
        root = _root(request)
        resp = RedirectResponse(_safe_next(form.get("next"), root), status_code=303)
        resp.set_cookie(COOKIE, value, httponly=True, samesite="strict", secure=secure(request),
                        max_age=sessions.max_age, path=root or "/")
        resp.delete_cookie(_LOGIN_COOKIE, path=root + "/login")
        return resp

    @app.post("/logout")
    @action("viewer")
    def logout(request: Request, sess: dict[str, Any], form: dict[str, str]) -> Response:
        sessions.end(sess["cookie"])  # the row is gone: the cookie is dead in every worker, and after restarts
        as_actor(sess["user"]).audited("ui.logout", f"user:{sess['u']}", {})
        resp = RedirectResponse(_root(request) + "/login", status_code=303)
        resp.delete_cookie(COOKIE, path=_root(request) or "/")
        return resp

    # -- pages --------------------------------------------------------------------------------------
    @app.get("/")
    @page
    def inventory(request: Request, sess: dict[str, Any]) -> Response:
        return render(request, "inventory.html", sess, rows=_views.inventory(project))

    @app.get("/models/{name}/{version}")
    @page
    def version(request: Request, sess: dict[str, Any]) -> Response:
        ref = _ref(request)
        data = _views.version_page(project, ref, root_path=_root(request))
        return render(request, "version.html", sess, aliases=_views.alias_choices(project, data["mv"].name),
                      msg=_flash(request, sess), **data)

    @app.get("/models/{name}/{version}/bom.json")
    @page
    def bom(request: Request, sess: dict[str, Any]) -> Response:
        from bastion.gates.card import cyclonedx_bom

        ref = _ref(request)
        doc = cyclonedx_bom(project, ref)
        filename = ref.replace(":", "-") + ".cdx.json"
        return JSONResponse(doc, headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @app.get("/models/{name}/{version}/card.md")
    @page
    def card(request: Request, sess: dict[str, Any]) -> Response:
        from bastion.gates.card import render_markdown

        ref = _ref(request)
        return PlainTextResponse(render_markdown(project, ref), media_type="text/markdown",
                                 headers={"Content-Disposition": f'attachment; filename="{ref.replace(":", "-")}.md"'})

    @app.get("/models/{name}/{version}/monitoring")
    @page
    def monitoring(request: Request, sess: dict[str, Any]) -> Response:
        return render(request, "monitoring.html", sess, **_views.monitoring_page(project, _ref(request)))

    @app.get("/models/{name}/{version}/promote")
    @page
    def promote_confirm(request: Request, sess: dict[str, Any]) -> Response:
        ref, alias = _ref(request), request.query_params.get("alias", "")
        if not sess["user"].can("operator"):
            return render(request, "error.html", sess, code=403,
                          message=f"Promotion needs the operator role; you are {sess['user'].role}.")
        decision = _views.promotion_decision(project, ref, alias)
        return render(request, "promote.html", sess, ref=ref, alias=alias, decision=decision,
                      name=request.path_params["name"], version=request.path_params["version"])

    @app.post("/models/{name}/{version}/promote")
    @action("operator")
    def promote(request: Request, sess: dict[str, Any], form: dict[str, str]) -> Response:
        ref, alias = _ref(request), form.get("alias", "")
        if form.get("confirm") != "yes":
            return PlainTextResponse("Promotion not confirmed.", status_code=400)
        mv = as_actor(sess["user"]).promote(ref, alias=alias)
        url = _model_url(mv.name, mv.version, f"Promoted {mv.ref} to {alias}.", sess)
        return RedirectResponse(_root(request) + url, status_code=303)

    @app.get("/aliases/{name}/rollback")
    @page
    def rollback_confirm(request: Request, sess: dict[str, Any]) -> Response:
        name, alias = request.path_params["name"], request.query_params.get("alias", "")
        if not sess["user"].can("operator"):
            return render(request, "error.html", sess, code=403,
                          message=f"Rollback needs the operator role; you are {sess['user'].role}.")
        history = project.alias_history(name, alias)
        active = [h for h in history if h["active"]]
        return render(request, "rollback.html", sess, name=name, alias=alias, history=history[::-1],
                      current=active[-1]["version"] if active else None,
                      target=active[-2]["version"] if len(active) > 1 else None)

    @app.post("/aliases/{name}/rollback")
    @action("operator")
    def rollback(request: Request, sess: dict[str, Any], form: dict[str, str]) -> Response:
        name, alias = request.path_params["name"], form.get("alias", "")
        if form.get("confirm") != "yes":
            return PlainTextResponse("Rollback not confirmed.", status_code=400)
        reason = form.get("reason", "")[:500] or "rolled back from the dashboard"
        mv = as_actor(sess["user"]).rollback(name, alias=alias, reason=reason)
        url = _model_url(mv.name, mv.version, f"Rolled {alias} back to {mv.ref}.", sess)
        return RedirectResponse(_root(request) + url, status_code=303)

    @app.get("/datasets")
    @page
    def datasets(request: Request, sess: dict[str, Any]) -> Response:
        return render(request, "datasets.html", sess, datasets=project.list_datasets(include_deleted=True))

    @app.get("/datasets/{name}/{version}")
    @page
    def dataset(request: Request, sess: dict[str, Any]) -> Response:
        return render(request, "dataset.html", sess, **_views.dataset_page(project, _ref(request)))

    verified: dict[str, Any] = {}

    @app.get("/audit")
    @page
    def audit(request: Request, sess: dict[str, Any]) -> Response:
        q = request.query_params
        before = q.get("before", "")
        filters = {k: q.get(k, "")[:200] for k in ("actor", "action", "subject")}
        data = _views.audit_page(project, actor=filters["actor"], action=filters["action"], subject=filters["subject"],
                                 before=_int_param(before))
        count = project.audit.count()
        if verified.get("count") != count and (count <= 200_000 or q.get("verify") == "1"):
            verified.update(count=count, report=project.audit.verify(), at=time.strftime("%Y-%m-%d %H:%M:%S"))
        nxt = None
        if data["next_before"] is not None:
            keep = {k: v for k, v in filters.items() if v}
            nxt = _root(request) + "/audit?" + urlencode({**keep, "before": data["next_before"]})
        return render(request, "audit.html", sess, filters=filters, count=count, next_url=nxt,
                      chain=verified.get("report") if verified.get("count") == count else None,
                      verified_at=verified.get("at"), **data)

    # -- static -------------------------------------------------------------------------------------
    @app.get("/static/{path:path}")
    async def static(path: str) -> Response:
        if path == "plotly.min.js":
            import plotly

            return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                                media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})
        if not path or "\\" in path or not all(_plain_url_char(c) for c in path):  # a NUL made resolve() raise
            return PlainTextResponse("Not found.", status_code=404)
        target = (_STATIC / path).resolve()
        if not target.is_relative_to(_STATIC.resolve()) or not target.is_file():
            return PlainTextResponse("Not found.", status_code=404)
        media = _MEDIA.get(target.suffix, "application/octet-stream")
        return FileResponse(target, media_type=media, headers={"Cache-Control": "public, max-age=3600"})

    return app


def _denied(d: _Denied) -> Response:
    """The refusal as plain text; after a body that did not arrive in time, the connection is closed too."""
    headers = {"Connection": "close"} if d.status == 408 else None
    return PlainTextResponse(d.message, status_code=d.status, headers=headers)


async def _call(fn: Callable[..., Response], *args: Any) -> Response:
    """Run a page or action (which read the store synchronously) off the event loop."""
    return await run_in_threadpool(fn, *args)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (bounded); the first value of each field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype != "application/x-www-form-urlencoded":
        raise _Denied(415, "Expected an application/x-www-form-urlencoded form.")
    if request.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        raise _Denied(415, "Forms are not accepted compressed (Content-Encoding); send them as they are.")
    body = b""
    try:
        async with asyncio.timeout(_FORM_TIMEOUT_S):  # a form trickled a byte at a time would hold its connection
            async for chunk in request.stream():
                body += chunk
                if len(body) > _MAX_FORM:
                    raise _Denied(413, f"The form is larger than {_MAX_FORM} bytes.")
    except TimeoutError:
        raise _Denied(408, f"The form did not arrive within {_FORM_TIMEOUT_S:g} seconds.") from None
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as e:
        raise _Denied(400, f"The form cannot be parsed: {e}") from None
    return {k: v[0] for k, v in parsed.items()}


def _ref(request: Request) -> str:
    name, version = request.path_params["name"], request.path_params["version"]
    number = _int_param(version)
    if number is None:
        raise NotFoundError(f"A version number was expected in the address; got {version[:40]!r}.")
    return f"{name}:{number}"


_INT = re.compile(r"[0-9]{1,18}")  # ASCII digits only ('²'.isdigit() is True), and below 2**63 for the database


def _int_param(value: str) -> int | None:
    """A non-negative integer from the address, or None when it is not one the database can hold."""
    return int(value) if _INT.fullmatch(value) else None


def _flash_sig(sess: dict[str, Any], msg: str) -> str:
    return hmac.new(sess["csrf"].encode(), b"flash\x00" + msg.encode(), hashlib.sha256).hexdigest()[:32]


def _model_url(name: str, version: int, msg: str, sess: dict[str, Any]) -> str:
    """A version page that shows ``msg`` once, to this session only: the banner is signed with the session's
    secret CSRF token, so a crafted link cannot make the dashboard state anything."""
    return f"/models/{quote(name, safe='')}/{version}?" + urlencode({"msg": msg, "sig": _flash_sig(sess, msg)})


def _flash(request: Request, sess: dict[str, Any]) -> str:
    msg, sig = request.query_params.get("msg", ""), request.query_params.get("sig", "")
    if not msg or not hmac.compare_digest(sig, _flash_sig(sess, msg)):
        return ""
    return msg


def _safe_next(target: str | None, root: str = "") -> str:
    """Only paths inside the dashboard: an open redirect after login would help phishing. No control, format or
    space characters either (browsers drop a tab or newline, so ``/<TAB>/evil.example`` would become
    ``//evil.example``), and no longer than a page address needs to be."""
    home = root + "/"
    if (not target or not target.startswith(home) or target.startswith("//") or "\\" in target
            or len(target) > 2048 or not all(_plain_url_char(c) for c in target)):
        return home
    return target


def _plain_url_char(c: str) -> bool:
    return "!" <= c <= "~" or (c > "\x7f" and unicodedata.category(c)[0] not in "CZ")


def _root(request: Request) -> str:
    """Where the dashboard is mounted ('' at the root of its own server)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _sig(v: Any) -> str:
    """Four significant digits (p-values like 3e-91 stay readable), '–' for none."""
    if isinstance(v, float) and not isinstance(v, bool):
        return "<1e-300" if v == 0 else f"{v:.4g}"
    return _fmt(v)


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if v is None:
        return "–"
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)
