"""Signed session cookies (HMAC-SHA256 over a JSON payload) and per-session CSRF tokens.

The signing secret lives in ``<project home>/ui/secret`` (created with mode 0600 on first use).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError

__all__ = ["SessionCodec", "load_secret"]

COOKIE = "bastion_session"


def load_secret(home: Path) -> bytes:
    """The dashboard's cookie-signing secret; created (32 random bytes, mode 0600) when missing."""
    path = Path(home) / "ui" / "secret"
    if path.is_file():
        mode = path.stat().st_mode & 0o077
        if mode:
            raise ConfigError(f"The dashboard secret {path} is readable by others (mode {oct(mode)}); chmod 600 it.")
        data = path.read_bytes().strip()
        if len(data) < 32:
            raise ConfigError(f"The dashboard secret {path} is shorter than 32 bytes; delete it to make a new one.")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return data


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class SessionCodec:
    """Encode and check session cookies: ``payload.signature``, payload = user, role, csrf, expiry."""

    def __init__(self, secret: bytes, *, max_age: int = 8 * 3600) -> None:
        self._key = hashlib.sha256(b"bastion-ui-session\x00" + secret).digest()
        self.max_age = max_age

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())

    def new(self, user: str, role: str) -> tuple[str, dict[str, Any]]:
        """A fresh session (new CSRF token) and its cookie value."""
        sess = {"u": user, "r": role, "csrf": secrets.token_urlsafe(32), "exp": int(time.time()) + self.max_age}
        return self.encode(sess), sess

    def encode(self, sess: dict[str, Any]) -> str:
        payload = json.dumps(sess, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{self._sign(payload)}"

    def decode(self, cookie: str | None) -> dict[str, Any] | None:
        """The session in a cookie, or None when it is missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 4096:
            return None
        body, sig = cookie.split(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            sess = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(sess, dict) or not isinstance(sess.get("exp"), int) or sess["exp"] < time.time():
            return None
        if not all(isinstance(sess.get(k), str) for k in ("u", "r", "csrf")):
            return None
        return sess
