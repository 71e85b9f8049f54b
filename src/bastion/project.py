"""A Bastion project: settings, the metadata database, the blob store and the audit log, in one handle.

Every door (CLI, Python API, server, dashboard) goes through a ``Project``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bastion.audit.checkpoints import after_commit, database_id
from bastion.audit.log import AuditEntry, AuditLog
from bastion.config import CONFIG_FILE, Settings, load_settings
from bastion.errors import ConfigError, StoreError
from bastion.registry import _aliases, _attachments, _datasets, _models
from bastion.registry.records import DatasetVersion, ModelVersion
from bastion.store.blobs import BlobStore, open_blob_store
from bastion.store.db import Database

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["Project", "init_project", "open_project"]

log = logging.getLogger("bastion.project")
logging.getLogger("bastion").addHandler(logging.NullHandler())

_DEFAULT_TOML = """# Bastion project settings. Environment variables BASTION_* override these.
[bastion]
home = ".bastion"
# database_url = "postgresql://user@host/db"   # default: SQLite in .bastion/bastion.db
# artifacts_url = "s3://bucket/prefix"          # default: .bastion/artifacts
# [bastion.storage_options]                     # S3-compatible endpoint; credentials come from AWS_* variables
# endpoint_url = "https://s3.example.internal"
# region = "eu-west-1"
"""


class Project:
    """Handle on one project's store, registry and audit log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.db_url)
        self.blobs: BlobStore = open_blob_store(settings.artifacts, storage_options=settings.storage_options)
        self.audit = AuditLog(self.db, settings.actor, head_path=settings.home_path / "audit-head.log",
                              database=database_id(settings))

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.settings.root

    @property
    def home(self) -> Path:
        return self.settings.home_path

    @property
    def actor(self) -> str:
        return self.settings.actor

    @contextmanager
    def transaction(self, *, first: tuple[Any, dict[str, Any]] | None = None) -> Iterator[Connection]:
        """A serialized write transaction; audit entries appended in it commit with the change (``first``: see
        :meth:`bastion.store.db.Database.write`)."""
        with self.db.write(first=first) as conn:
            conn.info["bastion_audit"] = []
            yield conn
            entries: list[AuditEntry] = conn.info.pop("bastion_audit", [])
        if entries:
            self.audit.write_head(entries[-1])
            after_commit(self, entries)

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
    ) -> AuditEntry:
        """Append an audit entry inside ``conn``'s transaction (``actor``: default the project's; ``head`` and
        ``with_statement``: see :meth:`bastion.audit.log.AuditLog.append`)."""
        entry = self.audit.append(conn, action=action, subject=subject, details=details, actor=actor, head=head,
                                  with_statement=with_statement, last=last)
        conn.info.setdefault("bastion_audit", []).append(entry)
        return entry

    def audited(self, action: str, subject: str, details: dict[str, Any] | None = None) -> AuditEntry:
        """Write one audit entry in a transaction of its own."""
        with self.transaction() as conn:
            return self.record(conn, action, subject, details)

    def tempdir(self) -> tempfile.TemporaryDirectory[str]:
        """A temp folder on the same file system as the store (cheap renames)."""
        base = self.home / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=base)

    def close(self) -> None:
        self.db.dispose()

    # -- datasets -----------------------------------------------------------------------------
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
    ) -> DatasetVersion:
        """Register a DataFrame, file or folder of Parquet as a new version of dataset ``name``."""
        return _datasets.register(
            self,
            source,
            name=name,
            description=description,
            tags=tags or {},
            derived_from=derived_from or [],
            extra=extra or {},
            progress=progress,
        )

    def get_dataset(self, ref: str, *, include_deleted: bool = False) -> DatasetVersion:
        return _datasets.get(self, ref, include_deleted=include_deleted)

    def list_datasets(self, name: str | None = None, *, include_deleted: bool = False) -> list[DatasetVersion]:
        return _datasets.list_versions(self, name, include_deleted=include_deleted)

    def dataset_path(self, ref: str, dest: str | Path | None = None) -> Path:
        """A verified local copy of a dataset version's files."""
        return _datasets.materialize(self, ref, dest)

    def read_dataset(self, ref: str) -> Any:
        """A dataset version as a pandas DataFrame (verified against its digest)."""
        return _datasets.read(self, ref)

    def delete_dataset(self, ref: str, *, reason: str = "") -> DatasetVersion:
        return _datasets.delete(self, ref, reason=reason)

    # -- models -------------------------------------------------------------------------------
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
        feature_names: list[str] | None = None,
    ) -> ModelVersion:
        """Register an in-memory estimator (saved with skops) or a model file/folder as a new version.

        A file must load as its flavor (detected, or ``flavor=``; ``"file"`` stores it opaque, never gated or
        served) and predict on a few rows of the first dataset given; ``convert="skops"`` re-saves a pickle or
        joblib file with skops; ``trusted`` names reviewed skops/pickle types (recorded with the version).
        Without a dataset, an ONNX/XGBoost/LightGBM model's inputs come from its own signature (named by
        ``feature_names`` when the artifact does not name them) and it must run on a generated probe batch.
        """
        return _models.register(
            self,
            model,
            name=name,
            datasets=datasets or [],
            metrics=metrics or {},
            params=params or {},
            tags=tags or {},
            description=description,
            parent=parent,
            allow_findings=allow_findings or {},
            progress=progress,
            flavor=flavor,
            convert=convert,
            trusted=trusted,
            feature_names=feature_names,
        )

    register_model = log_model

    def get_model(self, ref: str, *, include_deleted: bool = False) -> ModelVersion:
        return _models.get(self, ref, include_deleted=include_deleted)

    def list_models(self, name: str | None = None, *, include_deleted: bool = False) -> list[ModelVersion]:
        return _models.list_versions(self, name, include_deleted=include_deleted)

    def model_path(self, ref: str, dest: str | Path | None = None) -> Path:
        """A verified local copy of a model version's artifact (file or folder)."""
        return _models.materialize(self, ref, dest)

    def load_model(self, ref: str, *, trusted: list[str] | None = None) -> Any:
        return _models.load(self, ref, trusted=trusted)

    def delete_model(self, ref: str, *, reason: str = "") -> ModelVersion:
        return _models.delete(self, ref, reason=reason)

    def diff_models(self, a: str, b: str) -> dict[str, Any]:
        return _models.diff(self, a, b)

    def lineage(self, ref: str) -> dict[str, Any]:
        return _models.lineage(self, ref)

    def environment(self, ref: str) -> dict[str, Any]:
        mv = self.get_model(ref)
        if not mv.environment_digest:
            return {}
        doc: dict[str, Any] = json.loads(self.blobs.get_bytes(mv.environment_digest, what=f"environment of {ref}"))
        return doc

    # -- aliases ------------------------------------------------------------------------------
    def promote(self, ref: str, *, alias: str, force_reason: str | None = None) -> ModelVersion:
        """Point ``alias`` at a model version (after the promotion rules allow it)."""
        from bastion.trust import promote

        return promote(self, ref, alias=alias, force_reason=force_reason)

    def rollback(self, name: str, *, alias: str, reason: str = "") -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before its last promotion."""
        return _aliases.rollback(self, name, alias=alias, reason=reason)

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        return _aliases.history(self, name, alias)

    # -- attachments --------------------------------------------------------------------------
    def attach(self, ref: str, kind: str, document: dict[str, Any], *, subject_kind: str = "model") -> str:
        """Store a JSON document with a version (scan report, gate result, signature …); audited."""
        return _attachments.attach(self, ref, kind, document, subject_kind=subject_kind)

    def attachments(self, ref: str, kind: str, *, subject_kind: str = "model") -> list[dict[str, Any]]:
        """Documents of ``kind`` stored with a version, oldest first."""
        return _attachments.list_docs(self, ref, kind, subject_kind=subject_kind)

    # -- maintenance --------------------------------------------------------------------------
    def gc(self, *, dry_run: bool = False) -> list[str]:
        """Delete blobs no live version or attachment refers to; returns their digests."""
        return _models.gc(self, dry_run=dry_run)


def init_project(
    path: str | Path | None = None, *, database_url: str | None = None, artifacts_url: str | None = None
) -> Project:
    """Create ``bastion.toml`` and ``.bastion/`` (database and artifact folder) at ``path``.

    A team shares one ``database_url`` (PostgreSQL) and one ``artifacts_url`` (for example ``s3://bucket/prefix``):
    every project folder pointed at the same database must use the same artifact store.
    """
    root = Path(path or Path.cwd()).resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
        cfg = root / CONFIG_FILE
        if not cfg.exists():
            text = _DEFAULT_TOML
            if database_url:
                text += f"database_url = {json.dumps(database_url)}\n"
            if artifacts_url:
                text += f"artifacts_url = {json.dumps(artifacts_url)}\n"
            cfg.write_text(text, encoding="utf-8")
        (root / ".bastion").mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        raise StoreError(f"Cannot create a Bastion project in {root}: {e.strerror}.") from e
    project = Project(load_settings(root))
    if project.audit.count() == 0:
        project.audited("project.init", str(root), {"database": project.db.dialect})
    elif project.audit.newest(("project.init", "project.folder"), subject=str(root)) is None:
        # another folder on a shared database: the chain records that this folder keeps an audit head file,
        # so deleting it later is found (`audit verify`); never again for the same folder (that would hide it)
        project.audited("project.folder", str(root), {"database": project.db.dialect})
    return project


def open_project(path: str | Path | None = None, *, create: bool = False) -> Project:
    """Open the project at ``path`` (default: nearest above the cwd, or ``BASTION_PROJECT``)."""
    settings = load_settings(path)
    if not (settings.root / CONFIG_FILE).is_file() and not settings.home_path.is_dir():
        if create:
            return init_project(settings.root)
        raise ConfigError(
            f"No Bastion project at {settings.root}: run 'bastion init' there first (or set BASTION_PROJECT)."
        )
    return Project(settings)


if TYPE_CHECKING:

    def _conforms(p: Project) -> ProjectHandle:  # mypy proves Project satisfies the stages' Protocol
        return p
