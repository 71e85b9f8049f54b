"""Master key from the environment variable ``BASTION_MASTER_KEY`` (base64 of 32 bytes).

For CI and containers that receive secrets as variables; the value is never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bastion.crypto._util import b64d
from bastion.crypto.keys._local import MASTER_KEY_SIZE, LocalMasterKey
from bastion.errors import KeyManagementError

__all__ = ["ENV_VAR", "EnvKeyProvider"]

ENV_VAR = "BASTION_MASTER_KEY"


class EnvKeyProvider(LocalMasterKey):
    """Read the master key from ``var`` (default ``BASTION_MASTER_KEY``)."""

    __slots__ = ()

    def __init__(self, var: str = ENV_VAR, *, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get(var, "")
        if not raw:
            raise KeyManagementError(
                f"The environment variable {var} is not set; it must hold the base64 master key (32 bytes)."
            )
        try:
            key = b64d(raw, what=f"master key in {var}")
        except KeyManagementError:
            raise KeyManagementError(
                f"{var} is not valid base64; it must hold the base64 of a 32-byte master key."
            ) from None
        if len(key) != MASTER_KEY_SIZE:
            raise KeyManagementError(
                f"{var} decodes to {len(key)} bytes; the master key must be {MASTER_KEY_SIZE} bytes."
            )
        super().__init__(key, source=f"environment variable {var}")
