"""Append-only, hash-chained audit log of every change Bastion makes."""

from __future__ import annotations

from bastion.audit.log import AuditEntry, AuditLog, ChainReport

__all__ = ["AuditEntry", "AuditLog", "ChainReport"]
