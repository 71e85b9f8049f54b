"""Settings of one model server (what to serve, where, with which limits), passed to every worker as JSON.

Nothing secret goes in here: keys live in the project's keyring, TLS keys in files the operator names.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError
from bastion.serve._jwt import JwtSettings
from bastion.serve.limits import LimitSettings

__all__ = ["ENV_VAR", "ServeConfig"]

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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> ServeConfig:
        try:
            d: dict[str, Any] = json.loads(text)
            d["limits"] = LimitSettings(**d.get("limits") or {})
            d["jwt"] = JwtSettings(**d["jwt"]) if d.get("jwt") else None
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
