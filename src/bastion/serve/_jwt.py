"""Bearer JWTs (RS256/ES256) checked against a JWKS from a file or URL, with issuer and audience.

Implemented with ``cryptography`` only; ``alg: none`` and HMAC algorithms are refused.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bastion.errors import AuthError, ConfigError
from bastion.serve.auth import ROLES, Principal

__all__ = ["JwtSettings", "JwtVerifier", "b64url_decode", "load_jwks"]

log = logging.getLogger("bastion.serve")

_ALGS = {"RS256": "RSA", "ES256": "EC"}
_MAX_TOKEN = 8192


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int(s: str) -> int:
    return int.from_bytes(b64url_decode(s), "big")


def _public_key(jwk: dict[str, Any]) -> Any:
    kty = jwk.get("kty")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise ConfigError(f"JWKS key {jwk.get('kid')!r}: only EC curve P-256 (ES256) is supported.")
        return ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1()).public_key()
    raise ConfigError(f"JWKS key {jwk.get('kid')!r} has unsupported kty {kty!r}; expected RSA or EC.")


def load_jwks(doc: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """``kid -> (kty, public key)`` from a JWKS document."""
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise ConfigError("A JWKS document must be a JSON object with a 'keys' list.")
    out: dict[str, tuple[str, Any]] = {}
    for jwk in keys:
        if not isinstance(jwk, dict) or "kid" not in jwk:
            raise ConfigError("Every JWKS key needs a 'kid'.")
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            out[str(jwk["kid"])] = (str(jwk["kty"]), _public_key(jwk))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"JWKS key {jwk.get('kid')!r} is malformed: {e}.") from e
    return out


@dataclass(frozen=True)
class JwtSettings:
    """Where the keys come from and what tokens must say."""

    jwks: str  # a file path or an https:// URL
    issuer: str
    audience: str
    roles_claim: str = "roles"
    leeway_s: int = 30
    refresh_s: int = 300


class JwtVerifier:
    """Verify bearer tokens; the JWKS is re-read when its file changes or (URL) every ``refresh_s``."""

    def __init__(self, settings: JwtSettings) -> None:
        if not settings.issuer or not settings.audience:
            raise ConfigError("JWT authentication needs both an issuer and an audience to check.")
        self.settings = settings
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[str, Any]] = {}
        self._stamp: Any = None
        self._fetched = 0.0
        self._refresh(force=True)

    def _is_url(self) -> bool:
        return self.settings.jwks.startswith(("https://", "http://"))

    def _refresh(self, *, force: bool = False) -> None:
        src = self.settings.jwks
        if self._is_url():
            if not force and time.monotonic() - self._fetched < self.settings.refresh_s:
                return
            try:
                with urllib.request.urlopen(src, timeout=5) as resp:  # noqa: S310 - operator-configured URL
                    doc = json.loads(resp.read(1_000_000))
            except (OSError, ValueError) as e:
                if self._keys:
                    log.warning("JWKS refresh from %s failed (%s); keeping the previous keys", src, e)
                    self._fetched = time.monotonic()
                    return
                raise ConfigError(f"Cannot read the JWKS from {src}: {e}.") from e
            self._keys, self._fetched = load_jwks(doc), time.monotonic()
            return
        try:
            st = os.stat(src)
        except OSError as e:
            raise ConfigError(f"Cannot read the JWKS file {src}: {e.strerror}.") from e
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp and not force:
            return
        try:
            with open(src, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as e:
            raise ConfigError(f"The JWKS file {src} is not valid JSON: {e}.") from e
        self._keys, self._stamp = load_jwks(doc), stamp

    def verify(self, token: str) -> Principal:
        """A :class:`Principal` for a valid token; :class:`AuthError` (never saying which check) otherwise."""
        try:
            return self._verify(token)
        except AuthError:
            raise
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise AuthError("invalid credentials") from e

    def _verify(self, token: str) -> Principal:
        if len(token) > _MAX_TOKEN:
            raise AuthError("invalid credentials")
        h64, p64, s64 = token.split(".")
        header = json.loads(b64url_decode(h64))
        if not isinstance(header, dict):
            raise AuthError("invalid credentials")
        alg = header.get("alg")
        if alg not in _ALGS:
            raise AuthError("invalid credentials")
        if "crit" in header:  # RFC 7515 4.1.11: extensions we do not implement must make the token invalid
            raise AuthError("invalid credentials")
        kid = str(header.get("kid", ""))
        with self._lock:
            try:
                self._refresh()
            except ConfigError as e:
                log.error("JWKS unavailable: %s", e)
                raise AuthError("invalid credentials") from e
            entry = self._keys.get(kid)
        if entry is None or entry[0] != _ALGS[alg]:
            raise AuthError("invalid credentials")
        signed = f"{h64}.{p64}".encode("ascii")
        sig = b64url_decode(s64)
        key = entry[1]
        try:
            if alg == "RS256":
                key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
            else:
                if len(sig) != 64:
                    raise AuthError("invalid credentials")
                der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
                key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as e:
            raise AuthError("invalid credentials") from e
        claims = json.loads(b64url_decode(p64))
        if not isinstance(claims, dict):
            raise AuthError("invalid credentials")
        now, leeway = time.time(), self.settings.leeway_s
        exp = _numeric_date(claims.get("exp"))
        if exp is None or now > exp + leeway:
            raise AuthError("invalid credentials (token expired or without 'exp')")
        if "nbf" in claims:
            nbf = _numeric_date(claims["nbf"])
            if nbf is None or now + leeway < nbf:
                raise AuthError("invalid credentials")
        if claims.get("iss") != self.settings.issuer:
            raise AuthError("invalid credentials")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if self.settings.audience not in auds:
            raise AuthError("invalid credentials")
        raw_roles = claims.get(self.settings.roles_claim, [])
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        roles = frozenset(r for r in raw_roles if isinstance(r, str) and r in ROLES)
        sub = str(claims.get("sub", ""))[:128]
        if not sub or not roles:
            raise AuthError("invalid credentials")
        return Principal(key_id=f"jwt:{sub}", name=sub, roles=roles, kind="jwt")


_MAX_DATE = 253402300799  # 9999-12-31T23:59:59Z: later "dates" (1e999 parses as infinity) are not dates


def _numeric_date(v: Any) -> float | None:
    """An RFC 7519 NumericDate (finite, non-negative seconds; booleans are not numbers), else None."""
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= _MAX_DATE:
        return float(v)
    return None
