"""PII detection for tables and free text: column classification, span detection, recognizers.

`scan_table` classifies columns from a sample and scans free-text columns span by span.
"""

from __future__ import annotations

from bastion.data.pii._registry import ENTRY_POINT_GROUP, active_recognizers
from bastion.data.pii._scan import scan_table
from bastion.data.pii._text import detect_spans, detect_spans_batch
from bastion.data.pii.custom import CustomPattern, clear_patterns, register_pattern
from bastion.data.pii.interface import (
    ColumnFinding,
    EntityType,
    Recognizer,
    RegexRecognizer,
    Span,
    TableScanReport,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ColumnFinding",
    "CustomPattern",
    "EntityType",
    "Recognizer",
    "RegexRecognizer",
    "Span",
    "TableScanReport",
    "active_recognizers",
    "clear_patterns",
    "detect_spans",
    "detect_spans_batch",
    "register_pattern",
    "scan_table",
]
