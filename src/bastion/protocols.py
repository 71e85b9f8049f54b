"""Typed Protocols for the handles stages receive, so mypy checks every call across the seam.

``bastion.project.Project`` satisfies :class:`ProjectHandle`; stages annotate ``project: ProjectHandle``
instead of ``Any`` and never import the concrete class (no import cycle, any conforming fake works in tests).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
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

    def transaction(self, *, first: tuple[Any, dict[str, Any]] | None = None) -> AbstractContextManager[Connection]: ...

    def record(
        self,
        conn: Connection,
        action: str,
        subject: str,
        details: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
        head: tuple[int, str] | None = None,
        with_statement: tuple[Any, dict[str, Any]] | None = None,
        last: bool = False,
    ) -> AuditEntry: ...

    def audited(self, action: str, subject: str, details: dict[str, Any] | None = None) -> AuditEntry: ...

    def tempdir(self) -> tempfile.TemporaryDirectory[str]: ...

    def close(self) -> None: ...

    # -- datasets
    def register_dataset(
        self,
        source: Any,
        *,
        name: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        derived_from: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> DatasetVersion: ...

    def get_dataset(self, ref: str, *, include_deleted: bool = False) -> DatasetVersion: ...

    def list_datasets(self, name: str | None = None, *, include_deleted: bool = False) -> list[DatasetVersion]: ...

    def dataset_path(self, ref: str, dest: str | Path | None = None) -> Path: ...

    def read_dataset(self, ref: str) -> Any: ...

    def delete_dataset(self, ref: str, *, reason: str = "") -> DatasetVersion: ...

    # -- models
    def log_model(
        self,
        model: Any,
        *,
        name: str,
        datasets: list[Any] | None = None,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        parent: str | None = None,
        allow_findings: dict[str, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        flavor: str | None = None,
        convert: str | None = None,
        trusted: list[str] | None = None,
    ) -> ModelVersion: ...

    def get_model(self, ref: str, *, include_deleted: bool = False) -> ModelVersion: ...

    def list_models(self, name: str | None = None, *, include_deleted: bool = False) -> list[ModelVersion]: ...

    def model_path(self, ref: str, dest: str | Path | None = None) -> Path: ...

    def load_model(self, ref: str, *, trusted: list[str] | None = None) -> Any: ...

    def delete_model(self, ref: str, *, reason: str = "") -> ModelVersion: ...

    def diff_models(self, a: str, b: str) -> dict[str, Any]: ...

    def lineage(self, ref: str) -> dict[str, Any]: ...

    def environment(self, ref: str) -> dict[str, Any]: ...

    # -- aliases
    def promote(self, ref: str, *, alias: str, force_reason: str | None = None) -> ModelVersion: ...

    def rollback(self, name: str, *, alias: str, reason: str = "") -> ModelVersion: ...

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]: ...

    # -- attachments
    def attach(self, ref: str, kind: str, document: dict[str, Any], *, subject_kind: str = "model") -> str: ...

    def attachments(self, ref: str, kind: str, *, subject_kind: str = "model") -> list[dict[str, Any]]: ...

    def gc(self, *, dry_run: bool = False) -> list[str]: ...

