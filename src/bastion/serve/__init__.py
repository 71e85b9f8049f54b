"""The secure model server: serve a model by alias only after verifying it, with API keys and roles,
generated input validation, limits, a group-committed audit journal, metrics and hot reload.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.serve.app import create_app
    from bastion.serve.audit_sink import AuditJournal, verify_journal, verify_journals
    from bastion.serve.auth import ApiKeyRecord, CreatedKey, create_api_key, list_api_keys, revoke_api_key
    from bastion.serve.config import ServeConfig
    from bastion.serve.limits import LimitSettings
    from bastion.serve.loader import LoadedModel, TrustReport, check_trust, load_trusted
    from bastion.serve.runner import run_server

__all__ = [
    "ApiKeyRecord",
    "AuditJournal",
    "CreatedKey",
    "LimitSettings",
    "LoadedModel",
    "ServeConfig",
    "TrustReport",
    "check_trust",
    "create_api_key",
    "create_app",
    "list_api_keys",
    "load_trusted",
    "revoke_api_key",
    "run_server",
    "verify_journal",
    "verify_journals",
]

# Imported on first use: the prediction-log shipper (a spawned child that imports bastion.serve._shipper)
# then starts with NumPy and Arrow only, not FastAPI, the loader and the audit stack (seconds per server).
_WHERE = {
    "create_app": "app",
    "AuditJournal": "audit_sink",
    "verify_journal": "audit_sink",
    "verify_journals": "audit_sink",
    "ApiKeyRecord": "auth",
    "CreatedKey": "auth",
    "create_api_key": "auth",
    "list_api_keys": "auth",
    "revoke_api_key": "auth",
    "ServeConfig": "config",
    "LimitSettings": "limits",
    "LoadedModel": "loader",
    "TrustReport": "loader",
    "check_trust": "loader",
    "load_trusted": "loader",
    "run_server": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"bastion.serve.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'bastion.serve' has no attribute {name!r}")
