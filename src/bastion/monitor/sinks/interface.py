"""The alert-sink seam: the interface every sink implements, its result type and the shared retry loop.

A sink receives one alert document (``Alert.to_dict()``) and reports whether the receiver took it.
The local alert log is written by ``bastion.monitor.alerts.deliver`` before any sink runs.
"""

from __future__ import annotations

import builtins
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AlertSink", "Attempt", "SinkConfig", "SinkResult", "with_retries"]

Sleep = Callable[[float], None]


class SinkConfig(BaseModel):
    """Options every sink accepts; each sink extends it with its own fields (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str | None = None  # the destination's label in delivery records; default: the type
    retries: int = Field(default=4, ge=0, le=20)
    backoff: float = Field(default=0.5, ge=0, le=60)
    timeout: float = Field(default=5.0, gt=0, le=120)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try: delivered, or not (and then whether another try may help)."""

    ok: bool
    retryable: bool = True
    error: str = ""


@dataclass(frozen=True)
class SinkResult:
    """The outcome of sending one alert to one sink, after retries."""

    ok: bool
    attempts: int
    error: str = ""


class AlertSink(ABC):
    """One alert destination. Subclasses set ``type`` and ``config_model`` and implement ``send_once``.

    Third-party sinks register a subclass under the ``bastion.alert_sinks`` entry-point group; the
    entry-point name is the ``type`` used in ``monitoring.alerts.sinks`` of ``bastion-policy.yaml``.
    """

    type: ClassVar[str]
    config_model: ClassVar[builtins.type[SinkConfig]] = SinkConfig

    def __init__(self, config: SinkConfig) -> None:
        self.config = config

    @property
    def destination(self) -> str:
        """The label delivery records carry: the configured ``name``, else the sink type."""
        return self.config.name or self.type

    def check(self) -> str | None:
        """Why this sink cannot send right now (e.g. a secret variable unset), or ``None``. Not retried."""
        return None

    @abstractmethod
    def send_once(self, alert: dict[str, Any]) -> Attempt:
        """Try once to hand ``alert`` to the receiver. Must not raise for receiver or network failures."""

    def send(self, alert: dict[str, Any], *, sleep: Sleep = time.sleep) -> SinkResult:
        """Send with the configured retries and exponential backoff."""
        problem = self.check()
        if problem:
            return SinkResult(False, 0, problem)
        return with_retries(lambda: self.send_once(alert), retries=self.config.retries,
                            backoff=self.config.backoff, sleep=sleep)


def with_retries(
    attempt: Callable[[], Attempt], *, retries: int, backoff: float, sleep: Sleep = time.sleep
) -> SinkResult:
    """Call ``attempt`` up to ``retries + 1`` times, sleeping ``backoff * 2**n`` between tries."""
    last = Attempt(False, True, "not attempted")
    for n in range(retries + 1):
        last = attempt()
        if last.ok:
            return SinkResult(True, n + 1)
        if not last.retryable:
            return SinkResult(False, n + 1, last.error)
        if n < retries:
            sleep(backoff * (2**n))
    return SinkResult(False, retries + 1, last.error)
