"""Server-side dashboard sessions and the login throttle, both in the project's metadata database.

A session cookie is 32 random bytes; the database keeps only its SHA-256, with the user, role, CSRF token
and expiry. So sessions are shared by every worker and dashboard process, survive restarts, and end for
good on logout, password or role change and user removal (rows deleted). The throttle counts failed logins
per client address and per existing account in a window; both are shared the same way.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from bastion.store.schema import login_throttle, ui_sessions, ui_users

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["COOKIE", "LoginThrottle", "SessionStore"]

COOKIE = "bastion_session"
_MAX_COOKIE = 128


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Create, look up and end sessions (rows of ``ui_sessions``)."""

    def __init__(self, project: ProjectHandle, *, max_age: int = 8 * 3600) -> None:
        self.project = project
        self.max_age = max_age

    def new(self, user: str, role: str) -> tuple[str, dict[str, Any]]:
        """A fresh session (new CSRF token); returns the cookie value and the session. Purges expired rows."""
        token, now = secrets.token_urlsafe(32), time.time()
        sess = {"u": user, "r": role, "csrf": secrets.token_urlsafe(32), "exp": now + self.max_age}
        with self.project.transaction() as conn:
            conn.execute(delete(ui_sessions).where(ui_sessions.c.expires_at < now))
            conn.execute(insert(ui_sessions).values(token_hash=_digest(token), user_name=user, role=role,
                                                    csrf=sess["csrf"], created_at=now, expires_at=sess["exp"]))
        return token, sess

    def get(self, cookie: str | None) -> dict[str, Any] | None:
        """The live session of a cookie (its user still exists with the same role), else None."""
        if not cookie or len(cookie) > _MAX_COOKIE:
            return None
        q = (select(ui_sessions.c.user_name, ui_sessions.c.role, ui_sessions.c.csrf, ui_sessions.c.expires_at,
                    ui_users.c.role.label("user_role"))
             .join(ui_users, ui_users.c.name == ui_sessions.c.user_name)
             .where(ui_sessions.c.token_hash == _digest(cookie)))
        with self.project.db.quick_read() as conn:
            row = conn.execute(q).first()
        if row is None or row.expires_at < time.time() or row.role != row.user_role:
            return None
        return {"u": row.user_name, "r": row.role, "csrf": row.csrf, "exp": row.expires_at}

    def end(self, cookie: str) -> bool:
        """End one session (logout); True when it existed."""
        with self.project.transaction() as conn:
            return bool(conn.execute(delete(ui_sessions).where(ui_sessions.c.token_hash == _digest(cookie))).rowcount)

    def count(self, user: str) -> int:
        with self.project.db.read() as conn:
            return len(conn.execute(select(ui_sessions.c.token_hash).where(ui_sessions.c.user_name == user)).all())


@dataclass(frozen=True)
class Verdict:
    """Whether a login may be tried: ``scope`` names what is blocked ("address" or "account") or is None."""

    scope: str | None
    retry_after: int = 0


class LoginThrottle:
    """Failed logins per client address (``addr_limit``) and per existing account (``user_limit``) within
    ``window`` seconds; at the limit, every login from that address or for that account is refused (429)
    until the window that started with the first failure has passed."""

    def __init__(
        self, project: ProjectHandle, *, addr_limit: int = 5, user_limit: int = 10, window: float = 300.0
    ) -> None:
        self.project = project
        self.addr_limit, self.user_limit, self.window = addr_limit, user_limit, window

    def check(self, addr: str, user: str) -> Verdict:
        """A read: is this address or account blocked now?"""
        now = time.time()
        keys = [("addr", addr[:200]), ("user", user[:200])]
        with self.project.db.quick_read() as conn:
            rows = conn.execute(select(login_throttle).where(
                login_throttle.c.window_start > now - self.window,
                ((login_throttle.c.scope == "addr") & (login_throttle.c.key == keys[0][1]))
                | ((login_throttle.c.scope == "user") & (login_throttle.c.key == keys[1][1])))).all()
        for r in rows:
            limit = self.addr_limit if r.scope == "addr" else self.user_limit
            if r.failures >= limit:
                return Verdict("address" if r.scope == "addr" else "account",
                               max(1, int(r.window_start + self.window - now) + 1))
        return Verdict(None)

    def failed(self, addr: str, user: str | None) -> None:
        """Count a failure for the address and (when it exists) the account; one write transaction."""
        now = time.time()
        with self.project.transaction() as conn:
            conn.execute(delete(login_throttle).where(login_throttle.c.window_start <= now - self.window))
            for scope, key in (("addr", addr[:200]), ("user", (user or "")[:200])):
                if scope == "user" and not user:
                    continue
                found = conn.execute(update(login_throttle).where(
                    login_throttle.c.scope == scope, login_throttle.c.key == key)
                    .values(failures=login_throttle.c.failures + 1)).rowcount
                if not found:
                    conn.execute(insert(login_throttle).values(scope=scope, key=key, window_start=now, failures=1))

    def succeeded(self, addr: str, user: str) -> None:
        """A successful login clears the address's and the account's failures."""
        with self.project.transaction() as conn:
            conn.execute(delete(login_throttle).where(
                ((login_throttle.c.scope == "addr") & (login_throttle.c.key == addr[:200]))
                | ((login_throttle.c.scope == "user") & (login_throttle.c.key == user[:200]))))
