"""The protection report: which column got which operator, k-anonymity, and masked examples only.

Written as JSON (``schema_version`` 1) next to the protected output and attached to the dataset version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "ColumnProtection", "KAnonymity", "ProtectionReport", "k_anonymity"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ColumnProtection:
    """How one column was protected; ``masked_examples`` come from the scan and never hold raw values."""

    column: str
    operator: str
    scope: str
    entity: str | None = None
    confidence: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    key_id: str | None = None
    spans: Mapping[str, int] = field(default_factory=dict)
    linked: int = 0
    masked_examples: tuple[str, ...] = ()
    unreadable_cells: int = 0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "operator": self.operator,
            "scope": self.scope,
            "entity": self.entity,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "options": dict(self.options),
            "key_id": self.key_id,
            "spans": dict(sorted(self.spans.items())),
            "linked_spans": self.linked,
            "masked_examples": list(self.masked_examples),
            "unreadable_cells": self.unreadable_cells,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class KAnonymity:
    """k-anonymity over the quasi-identifiers of the protected output.

    ``k`` is the size of the smallest equivalence class (rows sharing all quasi-identifier values).
    """

    quasi_identifiers: tuple[str, ...]
    k: int | None
    classes: int
    rows: int
    rows_below_min_k: int = 0
    min_k: int | None = None
    suppressed_rows: int = 0
    levels: Mapping[str, str] = field(default_factory=dict)

    @property
    def satisfied(self) -> bool | None:
        """Whether ``k >= min_k`` (None when the policy sets no minimum)."""
        if self.min_k is None or self.k is None:
            return None
        return self.k >= self.min_k

    def to_dict(self) -> dict[str, Any]:
        return {
            "quasi_identifiers": list(self.quasi_identifiers),
            "k": self.k,
            "smallest_class_size": self.k,
            "classes": self.classes,
            "rows": self.rows,
            "min_k": self.min_k,
            "rows_below_min_k": self.rows_below_min_k,
            "satisfied": self.satisfied,
            "suppressed_rows": self.suppressed_rows,
            "levels": dict(self.levels),
        }


def k_anonymity(
    counts: Mapping[Any, int],
    quasi_identifiers: tuple[str, ...],
    *,
    min_k: int | None = None,
    suppressed_rows: int = 0,
    levels: Mapping[str, str] | None = None,
) -> KAnonymity:
    """k-anonymity from equivalence-class sizes (class key -> rows)."""
    sizes = list(counts.values())
    below = sum(s for s in sizes if min_k is not None and s < min_k)
    return KAnonymity(
        quasi_identifiers,
        min(sizes) if sizes else None,
        len(sizes),
        sum(sizes),
        below,
        min_k,
        suppressed_rows,
        dict(levels or {}),
    )


@dataclass(frozen=True)
class ProtectionReport:
    """Everything a reviewer needs to see what protection did, without any PII or key."""

    source: str
    rows: int
    columns: tuple[ColumnProtection, ...]
    k_anonymity: KAnonymity | None
    source_digest: str | None = None
    output: str | None = None
    engine: str = "memory"
    key_ids: Mapping[str, str] = field(default_factory=dict)
    policy_source: str = "defaults"
    stats: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    #: identifiers the residual check still found in the output, per column and entity
    residual: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: spans the row linkage protected, per column
    linked: Mapping[str, int] = field(default_factory=dict)

    @property
    def residual_identifiers(self) -> int:
        """How many identifiers survived protection (0 is the goal; see ``residual``)."""
        return sum(sum(v.values()) for v in self.residual.values())

    def column(self, name: str) -> ColumnProtection:
        """The entry of one column (KeyError if absent)."""
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "bastion.protection",
            "source": self.source,
            "source_digest": self.source_digest,
            "output": self.output,
            "rows": self.rows,
            "engine": self.engine,
            "policy_source": self.policy_source,
            "created": self.created,
            "key_ids": dict(self.key_ids),
            "columns": [c.to_dict() for c in self.columns],
            "operators": {c.column: c.operator for c in self.columns},
            "k_anonymity": self.k_anonymity.to_dict() if self.k_anonymity else None,
            "residual_identifiers": self.residual_identifiers,
            "residual": {c: dict(sorted(v.items())) for c, v in sorted(self.residual.items())},
            "linked_spans": dict(sorted(self.linked.items())),
            "stats": dict(self.stats),
        }
