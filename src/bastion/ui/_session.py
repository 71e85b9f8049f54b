"""Server-side dashboard sessions and the login throttle, both in the project's metadata database.

A session cookie is 32 random bytes; the database keeps only its SHA-256, with the user, role, CSRF token
and expiry. So sessions are shared by every worker and dashboard process, survive restarts, and end for
good on logout, password or role change and user removal (rows deleted). The throttle counts failed logins
per account and address, per address and per existing account in a window; shared the same way.
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

__all__ = ["COOKIE", "LoginThrottle", "SessionStore", "unlock_account"]

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
    """Whether a login may be tried: ``scope`` names what is blocked ("address", "account on this address"
    or "account") or is None."""

    scope: str | None
    retry_after: int = 0


_SCOPES = {"pair": "account on this address", "addr": "address", "user": "account"}


def _pair(user: str, addr: str) -> str:
    # a space is in no user name (users._NAME), so "alice 10.0.0.1" cannot be read as another pair
    return f"{user} {addr}"[:200]


class LoginThrottle:
    """Failed logins counted per account and address, per address, and per account, in the project database
    (so shared by every worker and dashboard process) within ``window`` seconds.

    Lockout is keyed on the account *and* address first (``pair_limit``): someone guessing, or trying to
    lock a user out, from one address blocks only that address for that account. An address trying many
    accounts is blocked at ``addr_limit``. The account itself is locked for everyone only at the higher
    ``user_limit`` (failures from many addresses: a distributed guess); ``unlock`` (``bastion users unlock``)
    lifts it. At a limit every login in that scope is refused (429) until the window that started with its
    first failure has passed.
    """

    def __init__(
        self, project: ProjectHandle, *, pair_limit: int = 5, addr_limit: int = 20, user_limit: int = 50,
        window: float = 300.0,
    ) -> None:
        self.project = project
        self.pair_limit, self.addr_limit, self.user_limit, self.window = pair_limit, addr_limit, user_limit, window

    def _limit(self, scope: str) -> int:
        return {"pair": self.pair_limit, "addr": self.addr_limit}.get(scope, self.user_limit)

    def check(self, addr: str, user: str) -> Verdict:
        """A read: is this account from this address, this address, or this account blocked now?"""
        now = time.time()
        t = login_throttle.c
        with self.project.db.quick_read() as conn:
            rows = conn.execute(select(login_throttle).where(
                t.window_start > now - self.window,
                ((t.scope == "pair") & (t.key == _pair(user, addr)))
                | ((t.scope == "addr") & (t.key == addr[:200]))
                | ((t.scope == "user") & (t.key == user[:200])))).all()
        for r in sorted(rows, key=lambda r: list(_SCOPES).index(r.scope) if r.scope in _SCOPES else 9):
            if r.failures >= self._limit(r.scope):
                return Verdict(_SCOPES.get(r.scope, "account"), max(1, int(r.window_start + self.window - now) + 1))
        return Verdict(None)

    def failed(self, addr: str, user: str | None) -> None:
        """Count a failure for the address, and (when the account exists) for the account on this address and
        the account; one write transaction."""
        now = time.time()
        keys = [("addr", addr[:200])]
        if user:
            keys += [("pair", _pair(user, addr)), ("user", user[:200])]
        with self.project.transaction() as conn:
            conn.execute(delete(login_throttle).where(login_throttle.c.window_start <= now - self.window))
            for scope, key in keys:
                found = conn.execute(update(login_throttle).where(
                    login_throttle.c.scope == scope, login_throttle.c.key == key)
                    .values(failures=login_throttle.c.failures + 1)).rowcount
                if not found:
                    conn.execute(insert(login_throttle).values(scope=scope, key=key, window_start=now, failures=1))

    def succeeded(self, addr: str, user: str) -> None:
        """A successful login clears the failures of this account on this address. The address's failures
        (other accounts tried from it) and the account's (tries from other addresses) stay counted: a
        guesser who also holds one valid account must not reset them by logging in."""
        with self.project.transaction() as conn:
            conn.execute(delete(login_throttle).where(
                (login_throttle.c.scope == "pair") & (login_throttle.c.key == _pair(user, addr))))

    def unlock(self, user: str) -> int:
        """Lift every lockout of account ``user`` (account-wide and per address); returns the rows removed.
        Audited callers use :meth:`bastion.ui.users.UserStore.unlock`."""
        with self.project.transaction() as conn:
            return unlock_account(conn, user)


def unlock_account(conn: Any, user: str) -> int:
    """Delete the throttle rows of account ``user`` (account-wide and on every address) in ``conn``'s
    transaction; returns how many there were. Address-wide rows stay: they count other accounts too."""
    t = login_throttle.c
    return int(conn.execute(delete(login_throttle).where(
        ((t.scope == "user") & (t.key == user[:200]))
        | ((t.scope == "pair") & t.key.startswith(f"{user} ", autoescape=True)))).rowcount)
