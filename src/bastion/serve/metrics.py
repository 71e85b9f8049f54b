"""Prometheus metrics of the model server: requests, latency, validation failures, rejected auth, model version.

With several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set and ``/metrics`` aggregates every process.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_mp

__all__ = ["CONTENT_TYPE", "ServeMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServeMetrics:
    """One registry per app; children with fixed labels are bound once (labels() is slow per request)."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("bastion_requests", "Requests by route and outcome.", ["route", "outcome"], registry=r)
        self.latency = Histogram("bastion_request_latency_seconds", "Request latency (server side).", ["route"],
                                 buckets=_BUCKETS, registry=r)
        self.validation_failures = Counter("bastion_validation_failures", "Requests refused by input validation.",
                                           ["route"], registry=r)
        self.auth_rejected = Counter("bastion_auth_rejected", "Requests refused by authentication or role.",
                                     ["reason"], registry=r)
        self.rate_limited = Counter("bastion_rate_limited", "Requests refused by rate or concurrency limits.",
                                    ["reason"], registry=r)
        self.rows = Counter("bastion_predicted_rows", "Rows predicted.", registry=r)
        gauge_kw: dict[str, Any] = {"multiprocess_mode": "liveall"} if self.multiprocess else {}
        self.model_info = Gauge("bastion_model_info", "The served model version (value 1).",
                                ["model", "version", "digest"], registry=r, **gauge_kw)
        self.reloads = Counter("bastion_model_reloads", "Hot reload attempts by result.", ["result"], registry=r)
        self._bound: dict[tuple[str, str], Any] = {}
        self._lat: dict[str, Any] = {}
        self._current: tuple[str, str, str] | None = None

    def observe(self, route: str, outcome: str, seconds: float) -> None:
        key = (route, outcome)
        c = self._bound.get(key)
        if c is None:
            c = self._bound[key] = self.requests.labels(route, outcome)
        c.inc()
        h = self._lat.get(route)
        if h is None:
            h = self._lat[route] = self.latency.labels(route)
        h.observe(seconds)

    def set_model(self, name: str, version: int, digest: str) -> None:
        if self._current is not None:
            self.model_info.remove(*self._current)
        self._current = (name, str(version), digest)
        self.model_info.labels(*self._current).set(1)

    def render(self) -> bytes:
        if self.multiprocess:
            reg = CollectorRegistry()
            prom_mp.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(reg))
        return bytes(generate_latest(self.registry))
