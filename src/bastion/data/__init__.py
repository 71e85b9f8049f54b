"""Stage 1 (prepare): find PII in training data, protect it, validate it.

`scan_data` is `bastion.data.pii.scan_table`; protection and validation names are added below.
"""

from __future__ import annotations

from bastion.data.pii import (
    ColumnFinding,
    EntityType,
    Span,
    TableScanReport,
    detect_spans,
    detect_spans_batch,
    scan_table,
)

scan_data = scan_table

__all__ = [
    "ColumnFinding",
    "EntityType",
    "Span",
    "TableScanReport",
    "detect_spans",
    "detect_spans_batch",
    "scan_data",
    "scan_table",
]

# --- protection / validation (owned by the protection work: add imports and __all__ names here) ---
from bastion.data.protect import Policy, ProtectionReport, load_policy, protect, protect_file  # noqa: E402
from bastion.data.reveal import reveal_file, reveal_table  # noqa: E402
from bastion.data.validate import Contract, ValidationReport, validate  # noqa: E402

__all__ += [
    "Contract",
    "Policy",
    "ProtectionReport",
    "ValidationReport",
    "load_policy",
    "protect",
    "protect_file",
    "reveal_file",
    "reveal_table",
    "validate",
]
# ---------------------------------------------------------------------------------------------------
