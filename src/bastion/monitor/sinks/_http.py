"""One JSON POST for the HTTP sinks, classified into delivered / retry / give up."""

from __future__ import annotations

import urllib.error
import urllib.request

from bastion.monitor.sinks.interface import Attempt

__all__ = ["post"]

USER_AGENT = "bastion-monitor/1"


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Attempt:
    """POST ``body``; 2xx is delivered, 4xx other than 408/429 is final (retrying will not help)."""
    req = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - http(s) checked in the config
                                 headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            if 200 <= resp.status < 300:
                return Attempt(True)
            return Attempt(False, True, f"HTTP {resp.status}")
    except urllib.error.HTTPError as e:
        return Attempt(False, not (400 <= e.code < 500 and e.code not in (408, 429)), f"HTTP {e.code}")
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        return Attempt(False, True, f"{type(e).__name__}: {getattr(e, 'reason', e)}")


def check_http_url(v: str, what: str) -> str:
    if not v.startswith(("http://", "https://")):
        raise ValueError(f"{what} must start with http:// or https://; got {v!r}")
    return v
