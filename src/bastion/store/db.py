"""The metadata database: engine set-up, serialized write transactions, migrations on first use.

SQLite runs in WAL mode with a busy timeout and takes its write lock at BEGIN (IMMEDIATE), so
concurrent writers queue instead of failing mid-transaction; PostgreSQL writers take an advisory lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.sql.expression import ClauseElement, Executable

from bastion.errors import ConfigError, StoreError

__all__ = ["HEAD_REVISION", "Database", "commit_with"]

log = logging.getLogger("bastion.store")

HEAD_REVISION = "0007"
_WRITE_LOCK_KEY = 0x6261_7374  # "bast": PostgreSQL advisory lock serializing Bastion writers
# A pooled PostgreSQL connection idle for longer than this is pinged before use (a dropped connection is then
# replaced instead of failing the call); one used more recently is trusted, which saves a round trip per call
# on the hot paths (resolve, promote, key checks). A connection the server dropped within this window fails
# its one call with a one-line StoreError, and the pool replaces it for the next call.
_PING_AFTER_IDLE_S = 1.0
_PG_LOCK = f"SELECT pg_advisory_xact_lock({_WRITE_LOCK_KEY})"


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _why(e: BaseException) -> str:
    """The first line of a driver error (psycopg adds hint lines), for a one-line message."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip()
    return (text.splitlines() or [type(orig).__name__])[0][:300]


class Database:
    """A connection to the metadata database with Bastion's transaction discipline."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError as e:
            raise ConfigError(f"Database URL {url!r} is not a valid SQLAlchemy URL.") from e
        self.dialect = parsed.get_backend_name()
        if self.dialect not in {"sqlite", "postgresql"}:
            raise ConfigError(f"Database URL must be sqlite:// or postgresql://; got {self.dialect}://.")
        self._local = threading.local()
        self.engine = self._make_engine(url)
        if migrate:
            self.migrate()

    def _make_engine(self, url: str) -> Engine:
        if self.dialect == "sqlite":
            parsed = make_url(url)
            if parsed.database and parsed.database != ":memory:":
                _private_file(Path(parsed.database))
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                opts = conn.get_execution_options()
                if opts.get("bastion_write"):
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                elif not opts.get("bastion_autocommit_read"):
                    conn.exec_driver_sql("BEGIN")

            return engine
        if self.dialect == "postgresql" and parsed_driver(url) is None:
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        # A short connect timeout: an unreachable server is a one-line error in seconds, not a hang.
        engine = create_engine(url, connect_args={"connect_timeout": 5})

        @event.listens_for(engine, "checkout")
        def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            if time.monotonic() - record.info.get("bastion_used", 0.0) <= _PING_AFTER_IDLE_S:
                return
            try:
                engine.dialect.do_ping(dbapi_conn)  # in autocommit: leaves no transaction open
            except Exception as e:  # the pool retries the checkout with a fresh connection
                raise DisconnectionError(str(e)) from e

        @event.listens_for(engine, "checkin")
        def _mark_used(_dbapi_conn: Any, record: Any) -> None:
            if record is not None:
                record.info["bastion_used"] = time.monotonic()

        return engine

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def write(self, *, first: tuple[Executable, dict[str, Any]] | None = None) -> Iterator[Connection]:
        """A serialized write transaction: commits on success, rolls back on any error.

        ``first``: a statement (with its parameters) to run first, under the lock; its first row is in
        ``conn.info["bastion_first"]``. On PostgreSQL it travels with BEGIN and the lock in one round trip.
        """
        try:
            if self.dialect == "postgresql":
                # BEGIN and the writers' lock in one round trip: on an autocommit connection we open the
                # transaction ourselves (psycopg would otherwise send its own BEGIN first); COMMIT/ROLLBACK
                # still go through the driver, which ends the open transaction.
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT",
                                                             bastion_write=True) as conn:
                    with conn.begin():
                        conn.info["bastion_first"] = _begin_locked(conn, first)
                        yield conn
                return
            with self.engine.connect().execution_options(bastion_write=True) as conn:
                with conn.begin():
                    if first is not None:
                        conn.info["bastion_first"] = conn.execute(first[0], first[1]).first()
                    yield conn
        except OperationalError as e:
            raise StoreError(f"Cannot write to the metadata database {_redact(self.url)}: {_why(e)}") from e

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction."""
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    yield conn
        except OperationalError as e:
            raise StoreError(f"Cannot read the metadata database {_redact(self.url)}: {_why(e)}") from e

    @contextmanager
    def quick_read(self) -> Iterator[Connection]:
        """Reads without an explicit transaction (each statement sees its own committed snapshot), for hot
        lookups done in ONE statement: no BEGIN/COMMIT round trips on PostgreSQL, no read lock on SQLite."""
        if self.dialect != "sqlite":
            try:
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    yield conn
            except OperationalError as e:
                raise StoreError(f"Cannot read the metadata database {_redact(self.url)}: {_why(e)}") from e
            return
        try:
            with self.engine.connect().execution_options(bastion_autocommit_read=True) as conn:
                yield conn
                conn.rollback()
        except OperationalError as e:
            raise StoreError(f"Cannot read the metadata database {_redact(self.url)}: {_why(e)}") from e

    # -- migrations ---------------------------------------------------------------------------
    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    try:
                        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
                    except SQLAlchemyError:
                        return None
            return str(row[0]) if row else None
        except OperationalError as e:
            raise StoreError(
                f"Cannot connect to the metadata database {_redact(self.url)}: {_why(e)}. "
                "Check the 'database_url' setting (bastion.toml or BASTION_DATABASE_URL)."
            ) from e

    def migrate(self) -> None:
        """Apply Alembic migrations up to head (cheap no-op when already there)."""
        if self.current_revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.attributes["engine"] = self.engine
        try:
            command.upgrade(cfg, "head")
        except OperationalError as e:
            raise StoreError(f"Cannot migrate the metadata database {_redact(self.url)}: {_why(e)}") from e
        log.info("metadata database migrated to %s", HEAD_REVISION)

    def dispose(self) -> None:
        self.engine.dispose()


def commit_with(conn: Connection, stmt: Executable, params: dict[str, Any]) -> None:
    """Run ``stmt`` as the LAST statement of a :meth:`Database.write` transaction; on PostgreSQL it travels
    with the COMMIT in one round trip (the context's own commit then finds nothing left to do). Only for
    writers whose work after this statement touches no database."""
    if conn.dialect.name != "postgresql":
        conn.execute(stmt, params)
        return
    _simple(conn, [_bound(conn, stmt, params), "COMMIT"])


def _bound(conn: Connection, stmt: Executable, params: dict[str, Any]) -> str:
    """``stmt`` with its parameters bound client-side by psycopg (its quoting, never string formatting), for a
    multi-statement simple query. Only the statement's text is compiled once and cached."""
    import psycopg

    key = (id(stmt), conn.dialect.name)
    cached = _COMPILED.get(key)
    if cached is None or cached[0] is not stmt:
        compiled = cast(ClauseElement, stmt).compile(dialect=conn.dialect)
        cached = (stmt, str(compiled), compiled)
        _COMPILED[key] = cached
    values = cached[2].construct_params(params)
    driver = conn.connection.driver_connection
    assert driver is not None
    return psycopg.ClientCursor(driver).mogrify(cached[1], values)


_COMPILED: dict[tuple[int, str], tuple[Any, str, Any]] = {}


def _simple(conn: Connection, statements: list[str]) -> Any:
    """Send ``statements`` as one simple query (several statements: psycopg must not prepare it, hence the driver
    call); returns the cursor positioned on the last result. A driver error invalidates the pooled connection like
    SQLAlchemy would, and surfaces as SQLAlchemy's error."""
    import psycopg

    driver = conn.connection.driver_connection
    assert driver is not None
    sql = "; ".join(statements)
    try:
        cur = driver.execute(sql, prepare=False)
        for _ in statements[1:]:
            cur.nextset()
        return cur
    except psycopg.Error as e:
        if isinstance(e, psycopg.OperationalError) or driver.closed:
            conn.invalidate(e)
            raise OperationalError(statements[0], None, e) from e
        from sqlalchemy.exc import DBAPIError

        raise DBAPIError.instance(statements[-1], None, e, psycopg.Error) from e


def _begin_locked(conn: Connection, first: tuple[Executable, dict[str, Any]] | None) -> Any:
    """``BEGIN; SELECT pg_advisory_xact_lock(…)[; first]`` in one round trip; the first row of ``first``."""
    if first is None:
        _simple(conn, ["BEGIN", _PG_LOCK])
        return None
    cur = _simple(conn, ["BEGIN", _PG_LOCK, _bound(conn, first[0], first[1])])
    row = cur.fetchone()
    if row is None:
        return None
    names = [d.name for d in cur.description or ()]
    return _FirstRow(dict(zip(names, row, strict=True)))


class _FirstRow:
    """Attribute access to the first row of ``first`` (like a SQLAlchemy Row)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def parsed_driver(url: str) -> str | None:
    """The explicit driver of a URL (``psycopg`` in ``postgresql+psycopg://``), if any."""
    scheme = url.split("://", 1)[0]
    return scheme.split("+", 1)[1] if "+" in scheme else None


def _private_file(path: Path) -> None:
    """Create the SQLite file 0600 in a folder of its own kind (SQLite gives its -wal and -shm files the
    database file's mode), and tighten a file an older Bastion left readable to others."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        try:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
        except OSError:  # not ours to change (another user's file): SQLite reports what matters
            pass
