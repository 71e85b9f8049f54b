"""The secure model server: serve a model by alias only after verifying it, with API keys and roles,
generated input validation, limits, a group-committed audit journal, metrics and hot reload.
"""

from __future__ import annotations

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
