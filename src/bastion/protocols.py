"""Typed Protocols for the handles stages receive, so mypy checks every call across the seam.

``bastion.project.Project`` satisfies :class:`ProjectHandle`; stages annotate ``project: ProjectHandle``
instead of ``Any`` and never import the concrete class (no import cycle, any conforming fake works in tests).
"""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection

if TYPE_CHECKING:
    from bastion.audit.log import AuditEntry, AuditLog
    from bastion.config import Settings
    from bastion.registry.records import DatasetVersion, ModelVersion
    from bastion.store.blobs import BlobStore
    from bastion.store.db import Database

__all__ = ["ProjectHandle"]


class ProjectHandle(Protocol):
    """What stages may use of a project: store, blobs, audit log, registry reads and attachments."""

    settings: Settings
    db: Database
    blobs: BlobStore
    audit: AuditLog

    @property
    def root(self) -> Path: ...

    @property
    def home(self) -> Path: ...

    @property
    def actor(self) -> str: ...

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def record(
        self,
        conn: Connection,
        action: str,
        subject: str,
        details: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> AuditEntry: ...

    def audited(self, action: str, subject: str, details: dict[str, Any] | None = None) -> AuditEntry: ...

    def tempdir(self) -> tempfile.TemporaryDirectory[str]: ...

    def get_model(self, ref: str, *, include_deleted: bool = False) -> ModelVersion: ...

    def list_models(self, name: str | None = None, *, include_deleted: bool = False) -> list[ModelVersion]: ...

    def get_dataset(self, ref: str, *, include_deleted: bool = False) -> DatasetVersion: ...

    def model_path(self, ref: str, dest: str | Path | None = None) -> Path: ...

    def attachments(self, ref: str, kind: str, *, subject_kind: str = "model") -> list[dict[str, Any]]: ...

