"""Settings of one model server (what to serve, where, with which limits), passed to every worker as JSON.

Nothing secret goes in here: keys live in the project's keyring, TLS keys in files the operator names.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError
from bastion.serve._conn import ConnectionLimits
from bastion.serve._jwt import JwtSettings
from bastion.serve.limits import LimitSettings

__all__ = ["ENV_VAR", "ServeConfig", "check_forwarded_allow_ips"]

ENV_VAR = "BASTION_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """Everything a server process needs.

    Parameters
    ----------
    ref
        ``NAME@ALIAS`` to serve (hot reload follows the alias).
    project_root
        The project folder (``bastion.toml``).
    poll_s
        How often each worker re-reads the alias (0 turns polling off; ``/v1/admin/reload`` still works).
    margin
        How far outside the training range a numeric input may be, as a fraction of that range.
    audit_durability
        ``"write"`` (kernel-durable group commit, default) or ``"fsync"`` (disk-durable group commit).
    prediction_log
        Write inputs/outputs (sensitive fields dropped) to the monitoring prediction log.
    connections
        Header-read and keep-alive timeouts, total and per-client connection caps (:mod:`bastion.serve._conn`).
    forwarded_allow_ips
        Proxy addresses (IPs or CIDRs) whose ``X-Forwarded-For``/``-Proto`` are believed; empty (the
        default): nobody's, the TCP peer is the client.
    """

    ref: str
    project_root: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    tls_cert: str | None = None
    tls_key: str | None = None
    poll_s: float = 2.0
    margin: float = 0.1
    target: str | None = None
    limits: LimitSettings = field(default_factory=LimitSettings)
    audit_durability: str = "write"
    prediction_log: bool = True
    jwt: JwtSettings | None = None
    access_log: bool = False
    # mount the dashboard at /ui (it does its own login; the API's keys never apply to it)
    ui: bool = False
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    forwarded_allow_ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"--workers must be between 1 and 64; got {self.workers}.")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535; got {self.port}.")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key.")
        for p in (self.tls_cert, self.tls_key):
            if p is not None and not Path(p).is_file():
                raise ConfigError(f"TLS file {p} does not exist.")
        if self.poll_s < 0:
            raise ConfigError(f"The alias poll interval must be >= 0 seconds; got {self.poll_s}.")
        if self.audit_durability not in ("write", "fsync"):
            raise ConfigError(f"Audit durability must be 'write' or 'fsync'; got {self.audit_durability!r}.")
        object.__setattr__(self, "forwarded_allow_ips", check_forwarded_allow_ips(self.forwarded_allow_ips))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> ServeConfig:
        try:
            d: dict[str, Any] = json.loads(text)
            d["limits"] = LimitSettings(**d.get("limits") or {})
            d["jwt"] = JwtSettings(**d["jwt"]) if d.get("jwt") else None
            d["connections"] = ConnectionLimits(**d.get("connections") or {})
            d["forwarded_allow_ips"] = tuple(d.get("forwarded_allow_ips") or ())
            return ServeConfig(**d)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"Malformed server configuration: {e}.") from e

    @staticmethod
    def from_env() -> ServeConfig:
        text = os.environ.get(ENV_VAR)
        if not text:
            raise ConfigError(f"{ENV_VAR} is not set; start the server with `bastion serve`.")
        return ServeConfig.from_json(text)

    def with_(self, **changes: Any) -> ServeConfig:
        return replace(self, **changes)


def check_forwarded_allow_ips(values: Any) -> tuple[str, ...]:
    """Proxy addresses as given (each an IP address or CIDR network); raises ConfigError on anything else.

    ``*`` (trust every peer) is refused on purpose: a forged ``X-Forwarded-For`` would then choose the
    address that login throttling, the audit log and the request journal record.
    """
    if isinstance(values, str):
        values = [v for v in values.split(",")]
    out: list[str] = []
    for raw in values:
        v = str(raw).strip()
        if not v:
            continue
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ConfigError(
                f"--forwarded-allow-ips takes IP addresses or CIDR networks of your proxies; got {v!r}."
            ) from None
        out.append(v)
    return tuple(out)
