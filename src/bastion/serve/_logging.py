"""Structured JSON log lines for the server process (the library itself never configures logging).

Only the fields we put in a record are written; keys and tokens are never passed to a logger.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "configure_json_logging"]

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, pid, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the ``bastion`` and ``uvicorn`` loggers (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("bastion", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        if any(isinstance(h.formatter, JsonFormatter) for h in lg.handlers):
            continue
        lg.addHandler(handler)
        lg.setLevel(level)
        lg.propagate = False
