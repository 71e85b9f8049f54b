from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from bastion.errors import ConfigError, RegistryError, StoreError
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


# ------------------------------------------------------------------ PostgreSQL hot paths (issue 17, bench/registry)
def _round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every query psycopg sends (its first words), and every COMMIT/ROLLBACK that reaches the server."""
    import psycopg
    from psycopg.pq import TransactionStatus

    sent: list[str] = []
    execute, commit = psycopg.Cursor.execute, psycopg.Connection.commit

    def counted_execute(self: Any, query: Any, *a: Any, **kw: Any) -> Any:
        sent.append(" ".join(str(query).split()[:3]).upper())
        return execute(self, query, *a, **kw)

    def counted_commit(self: Any) -> None:
        if self.info.transaction_status != TransactionStatus.IDLE:
            sent.append("COMMIT")
        commit(self)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
    monkeypatch.setattr(psycopg.Connection, "commit", counted_commit)
    return sent


def test_postgres_resolve_is_one_round_trip_and_promote_three(pg_url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Round trips are the cost on PostgreSQL: resolving an alias is one query (no BEGIN/COMMIT, no ping of a
    # connection used a moment ago); a promotion is the lookup, the audit chain's word on whether the version was
    # deleted (one statement, no transaction: the row's deleted_at is only a cache), then BEGIN + lock + the state
    # read in one simple query, then the write (alias, history and audit entry in one statement) sent with the COMMIT.
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from bastion.project import init_project

    p = init_project(tmp_path / "proj", database_url=pg_url)
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    for i in range(2):
        p.log_model(LogisticRegression().fit(X, [0, 1, 0, 1 - i]), name="m")
    p.promote("m:1", alias="prod")
    sent = _round_trips(monkeypatch)
    assert p.get_model("m@prod").version == 1
    assert sent == ["SELECT MODELS.ID, MODELS.NAME,"]
    sent.clear()
    mv = p.promote("m:2", alias="prod")
    assert (mv.version, mv.aliases) == (2, ("prod",))
    assert sent == ["SELECT MODELS.ID, MODELS.NAME,", "SELECT AUDIT_LOG.SEQ, AUDIT_LOG.TS,",
                    "BEGIN; SELECT PG_ADVISORY_XACT_LOCK(1650553716);", "WITH SET_ALIAS AS"]
    # what the single statements wrote is what the SQLite path writes: the alias, its history, the audit entry
    assert p.get_model("m@prod").version == 2
    assert [h["version"] for h in p.alias_history("m", "prod")] == [1, 2]
    entry = p.audit.entries(limit=1)[0]
    assert (entry.action, entry.subject, entry.details["previous"]) == ("model.promote", "m:2", 1)
    assert p.audit.verify().ok
    assert p.rollback("m", alias="prod").version == 1
    # a version deleted meanwhile is refused under the lock, and nothing is written
    p.delete_model("m:2", reason="test")
    from bastion.registry._aliases import apply_promotion

    before = p.audit.count()
    with pytest.raises(RegistryError, match="deleted meanwhile"):
        apply_promotion(p, mv, "prod", evidence=None, forced=False, force_reason=None)
    assert p.audit.count() == before and p.get_model("m@prod").version == 1
    p.close()


def test_postgres_dropped_connection_is_replaced(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # No pre-ping on every checkout: a connection idle longer than the window is pinged (and replaced when the
    # server dropped it); one the server dropped within the window fails its one call with a one-line
    # StoreError, and the next call gets a fresh connection. Reads and writes both.
    import psycopg
    from sqlalchemy import text

    import bastion.store.db as dbmod

    db = Database(pg_url)

    def kill_others() -> None:
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")

    def one() -> int:
        with db.quick_read() as conn:
            return int(conn.execute(text("SELECT 1")).scalar_one())

    assert one() == 1
    kill_others()
    monkeypatch.setattr(dbmod, "_PING_AFTER_IDLE_S", 0.0)  # idle "long enough": pinged, replaced, no error
    assert one() == 1
    kill_others()
    monkeypatch.setattr(dbmod, "_PING_AFTER_IDLE_S", 3600.0)  # trusted without a ping: one failure, then fine
    with pytest.raises(StoreError, match="Cannot read the metadata database"):
        one()
    assert one() == 1
    kill_others()
    with pytest.raises(StoreError, match="Cannot write to the metadata database"):
        with db.write() as conn:
            conn.execute(text("SELECT 1"))
    with db.write() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    db.dispose()
