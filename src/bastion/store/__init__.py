"""One store: the metadata database (SQLAlchemy 2 + Alembic) and the content-addressed blob store."""

from __future__ import annotations

from bastion.store.blobs import BlobStore, open_blob_store
from bastion.store.db import Database

__all__ = ["BlobStore", "Database", "open_blob_store"]
