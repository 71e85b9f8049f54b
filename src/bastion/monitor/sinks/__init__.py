"""Alert sinks: the interface, the built-in sinks (file, webhook, slack, email, alertmanager) and
third-party sinks from the ``bastion.alert_sinks`` entry-point group."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bastion._plugins import plugin_classes
from bastion.errors import ConfigError
from bastion.monitor.sinks.alertmanager import AlertmanagerSink
from bastion.monitor.sinks.email import EmailSink
from bastion.monitor.sinks.file import FileSink, FileSinkConfig
from bastion.monitor.sinks.interface import AlertSink, Attempt, SinkConfig, SinkResult, with_retries
from bastion.monitor.sinks.slack import SlackSink
from bastion.monitor.sinks.webhook import WebhookSink

__all__ = [
    "ENTRY_POINT_GROUP",
    "AlertSink",
    "Attempt",
    "SinkConfig",
    "SinkResult",
    "available_sinks",
    "build_sink",
    "parse_sink_config",
    "with_retries",
]

ENTRY_POINT_GROUP = "bastion.alert_sinks"
log = logging.getLogger("bastion.monitor")

_BUILTINS: dict[str, type[AlertSink]] = {
    c.type: c for c in (FileSink, WebhookSink, SlackSink, EmailSink, AlertmanagerSink)
}


@cache
def _plugins() -> dict[str, type[AlertSink]]:
    return plugin_classes(entry_points(group=ENTRY_POINT_GROUP), AlertSink, "alert sink", log)


def available_sinks() -> dict[str, type[AlertSink]]:
    """Every sink type a config may name: plugins, then built-ins (built-ins win on a name clash)."""
    return {**_plugins(), **_BUILTINS}


def parse_sink_config(data: Any) -> SinkConfig:
    """Validate one ``sinks:`` entry with its sink's own config model. Raises ``ValueError``."""
    if isinstance(data, SinkConfig):
        return data
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError(f"each sink must be a mapping with a 'type'; got {data!r}")
    sinks = available_sinks()
    cls = sinks.get(data["type"])
    if cls is None:
        raise ValueError(f"unknown sink type {data['type']!r}; known: {', '.join(sorted(sinks))}")
    try:
        return cls.config_model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors())
        raise ValueError(f"sink {data.get('name') or data['type']!r}: {problems}") from e


def build_sink(config: SinkConfig, *, root: str | Path | None = None) -> AlertSink:
    """The sink instance for a validated config; relative file paths resolve against ``root``."""
    cls = available_sinks().get(config.type)
    if cls is None:
        raise ConfigError(f"Unknown alert sink type {config.type!r}; known: {', '.join(sorted(available_sinks()))}.")
    if isinstance(config, FileSinkConfig) and root is not None and not Path(config.path).is_absolute():
        config = config.model_copy(update={"path": str(Path(root) / config.path)})
    return cls(config)
