from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from bastion.errors import ConfigError, StoreError
from bastion.store.db import HEAD_REVISION, Database
from bastion.store.schema import metadata


def test_migrations_create_the_schema_the_code_uses(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    assert db.current_revision() == HEAD_REVISION
    insp = inspect(db.engine)
    for table in metadata.sorted_tables:
        assert set(c["name"] for c in insp.get_columns(table.name)) == set(table.c.keys()), table.name
    Database(f"sqlite:///{tmp_path / 'm.db'}")  # second open: no-op, no error


def test_postgres_migrations(pg_url: str) -> None:
    db = Database(pg_url)
    assert db.current_revision() == HEAD_REVISION
    assert set(inspect(db.engine).get_table_names()) >= {t.name for t in metadata.sorted_tables}


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000


@pytest.mark.parametrize(
    "url,err",
    [("mysql://x@y/z", ConfigError), ("not a url", ConfigError), ("postgresql://u@127.0.0.1:1/db", StoreError)],
)
def test_bad_urls(url: str, err: type[Exception]) -> None:
    with pytest.raises(err):
        Database(url)
