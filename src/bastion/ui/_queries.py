"""The dashboard's inventory reads: the registry's summaries (the door keeps no queries of its own)."""

from __future__ import annotations

from bastion.registry._summaries import latest_documents, latest_documents_by_model, model_summaries, scan_statuses

__all__ = ["latest_documents", "latest_documents_by_model", "model_summaries", "scan_statuses"]
