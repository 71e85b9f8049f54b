"""Protect PII in tables: per-column and per-entity operators, spans in free text, k-anonymity, reports.

``protect(df, policy)`` for in-memory data; ``protect_file`` streams files through an engine.
"""

from __future__ import annotations

from bastion.data.protect._plan import METADATA_KEY, ProtectionPlan
from bastion.data.protect._project import (
    check_reveal_allowed,
    init_project_keys,
    open_project_keyring,
    protect_into_project,
    reveal_audited,
)
from bastion.data.protect._run import (
    build_plan,
    file_digest,
    project_keyring,
    protect,
    protect_file,
    report_path_for,
)
from bastion.data.protect.policy import OPERATORS, Policy, Rule, load_policy
from bastion.data.protect.report import ColumnProtection, KAnonymity, ProtectionReport, k_anonymity

__all__ = [
    "METADATA_KEY",
    "OPERATORS",
    "ColumnProtection",
    "KAnonymity",
    "Policy",
    "ProtectionPlan",
    "ProtectionReport",
    "Rule",
    "build_plan",
    "check_reveal_allowed",
    "file_digest",
    "init_project_keys",
    "k_anonymity",
    "load_policy",
    "open_project_keyring",
    "project_keyring",
    "protect",
    "protect_file",
    "protect_into_project",
    "report_path_for",
    "reveal_audited",
]
