"""Generic JSON webhook sink: the alert document, HMAC-SHA256 signed with a secret from the environment."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import os
from typing import Any, ClassVar

from pydantic import field_validator

from bastion.monitor.sinks._http import check_http_url, post
from bastion.monitor.sinks.interface import AlertSink, Attempt, SinkConfig

__all__ = ["SIGNATURE_HEADER", "WebhookSink", "WebhookSinkConfig", "sign_body"]

SIGNATURE_HEADER = "X-Bastion-Signature"


def sign_body(body: bytes, secret: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``, the value of the ``X-Bastion-Signature`` header."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSinkConfig(SinkConfig):
    type: str = "webhook"
    url: str
    secret_env: str = "BASTION_WEBHOOK_SECRET"  # noqa: S105 - the name of a variable, not a secret

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        return check_http_url(v, "webhook url")


class WebhookSink(AlertSink):
    """POSTs the alert as JSON with ``X-Bastion-Signature: sha256=<hmac>``; never sends unsigned."""

    type: ClassVar[str] = "webhook"
    config_model: ClassVar[builtins.type[SinkConfig]] = WebhookSinkConfig
    config: WebhookSinkConfig

    def check(self) -> str | None:
        if not os.environ.get(self.config.secret_env):
            return f"secret variable {self.config.secret_env} is not set; refusing to send unsigned"
        return None

    def send_once(self, alert: dict[str, Any]) -> Attempt:
        secret = os.environ.get(self.config.secret_env, "").encode()
        body = json.dumps(alert, sort_keys=True).encode()
        headers = {SIGNATURE_HEADER: sign_body(body, secret), "X-Bastion-Alert-Id": str(alert.get("id", ""))}
        return post(self.config.url, body, headers, timeout=self.config.timeout)
