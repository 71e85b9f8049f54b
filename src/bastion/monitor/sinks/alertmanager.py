"""Prometheus Alertmanager sink: POST ``/api/v2/alerts`` with labels (alertname = rule) and annotations."""

from __future__ import annotations

import builtins
import json
import os
from typing import Any, ClassVar

from pydantic import Field, field_validator

from bastion.monitor.sinks._http import check_http_url, post
from bastion.monitor.sinks.interface import AlertSink, Attempt, SinkConfig

__all__ = ["AlertmanagerSink", "AlertmanagerSinkConfig", "to_alertmanager"]


class AlertmanagerSinkConfig(SinkConfig):
    type: str = "alertmanager"
    url: str  # the Alertmanager base URL, e.g. http://alertmanager:9093
    bearer_token_env: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)  # added to every alert, e.g. {team: ml}
    generator_url: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        return check_http_url(v, "alertmanager url").rstrip("/")


def to_alertmanager(alert: dict[str, Any], cfg: AlertmanagerSinkConfig) -> list[dict[str, Any]]:
    """The ``postableAlerts`` body for one Bastion alert."""
    labels = {**cfg.labels, "alertname": str(alert.get("rule")), "severity": str(alert.get("severity")),
              "model": str(alert.get("model")), "signal": str(alert.get("signal")), "source": "bastion"}
    annotations = {"summary": str(alert.get("message")), "alert_id": str(alert.get("id"))}
    for k in ("window_start", "window_end"):
        if alert.get(k):
            annotations[k] = str(alert[k])
    doc: dict[str, Any] = {"labels": labels, "annotations": annotations}
    if alert.get("created"):
        doc["startsAt"] = alert["created"]
    if cfg.generator_url:
        doc["generatorURL"] = cfg.generator_url
    return [doc]


class AlertmanagerSink(AlertSink):
    type: ClassVar[str] = "alertmanager"
    config_model: ClassVar[builtins.type[SinkConfig]] = AlertmanagerSinkConfig
    config: AlertmanagerSinkConfig

    def check(self) -> str | None:
        env = self.config.bearer_token_env
        if env and not os.environ.get(env):
            return f"bearer token variable {env} is not set"
        return None

    def send_once(self, alert: dict[str, Any]) -> Attempt:
        headers = {}
        if self.config.bearer_token_env:
            headers["Authorization"] = "Bearer " + os.environ.get(self.config.bearer_token_env, "")
        body = json.dumps(to_alertmanager(alert, self.config)).encode()
        return post(self.config.url + "/api/v2/alerts", body, headers, timeout=self.config.timeout)
