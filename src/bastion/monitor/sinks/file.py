"""File sink: appends each alert as one JSON line (fsynced, 0600) to a file of your choice, e.g. for a
log shipper. Relative paths are relative to the project root."""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from bastion.monitor.sinks.interface import AlertSink, Attempt, SinkConfig

__all__ = ["FileSink", "FileSinkConfig", "append_jsonl"]


class FileSinkConfig(SinkConfig):
    type: str = "file"
    path: str
    retries: int = 0


def append_jsonl(path: Path, doc: dict[str, Any]) -> None:
    """Append one JSON line and fsync; new files are 0600, new folders 0700."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(doc, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class FileSink(AlertSink):
    type: ClassVar[str] = "file"
    config_model: ClassVar[builtins.type[SinkConfig]] = FileSinkConfig
    config: FileSinkConfig

    def send_once(self, alert: dict[str, Any]) -> Attempt:
        try:
            append_jsonl(Path(self.config.path), alert)
        except OSError as e:
            return Attempt(False, True, f"{type(e).__name__}: {e.strerror or e}")
        return Attempt(True)
