"""Stage 2: versioned datasets and models with lineage, aliases, promote and rollback."""

from __future__ import annotations

from bastion.registry.records import DatasetVersion, ModelVersion
from bastion.registry.refs import Ref, parse_ref

__all__ = ["DatasetVersion", "ModelVersion", "Ref", "parse_ref"]
