"""Slack-compatible incoming-webhook sink (Slack, Mattermost, Rocket.Chat): one ``{"text": ...}`` message.

The webhook URL carries its own token, so it is read from an environment variable by default.
"""

from __future__ import annotations

import builtins
import json
import os
from typing import Any, ClassVar

from pydantic import field_validator, model_validator

from bastion.monitor.sinks._http import check_http_url, post
from bastion.monitor.sinks.interface import AlertSink, Attempt, SinkConfig

__all__ = ["SlackSink", "SlackSinkConfig", "slack_text"]

_ICON = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


class SlackSinkConfig(SinkConfig):
    type: str = "slack"
    url: str | None = None
    url_env: str | None = None  # e.g. BASTION_SLACK_WEBHOOK_URL: the URL is a secret
    channel: str | None = None
    username: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v, "slack url")

    @model_validator(mode="after")
    def _one_url(self) -> SlackSinkConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a slack sink needs exactly one of 'url' or 'url_env'")
        return self


def slack_text(alert: dict[str, Any]) -> str:
    """The message line: severity, model, rule, message and window."""
    sev = str(alert.get("severity", "warning"))
    text = f"{_ICON.get(sev, '')} *{sev.upper()}* `{alert.get('model')}` {alert.get('rule')}: {alert.get('message')}"
    if alert.get("window_start") or alert.get("window_end"):
        text += f"\nwindow {alert.get('window_start')} .. {alert.get('window_end')}"
    return text.strip()


class SlackSink(AlertSink):
    type: ClassVar[str] = "slack"
    config_model: ClassVar[builtins.type[SinkConfig]] = SlackSinkConfig
    config: SlackSinkConfig

    def _url(self) -> str:
        if self.config.url is not None:
            return self.config.url
        return os.environ.get(self.config.url_env or "", "")

    def check(self) -> str | None:
        url = self._url()
        if not url:
            return f"variable {self.config.url_env} holding the slack webhook URL is not set"
        if not url.startswith(("http://", "https://")):
            return f"variable {self.config.url_env} must hold an http(s) URL"
        return None

    def send_once(self, alert: dict[str, Any]) -> Attempt:
        payload: dict[str, Any] = {"text": slack_text(alert)}
        if self.config.channel:
            payload["channel"] = self.config.channel
        if self.config.username:
            payload["username"] = self.config.username
        return post(self._url(), json.dumps(payload).encode(), {}, timeout=self.config.timeout)
