"""SQLAlchemy engines that behave under several gevent workers.

SQLite: WAL journalling (readers never block the writer), a busy timeout (a
writer waits for the lock instead of failing at once) and foreign keys on.
PostgreSQL: psycopg 3, which cooperates with gevent's patched sockets on its
own (no psycogreen needed), with a pool sized for the worker's greenlets; SQLAlchemy
has its dialect from 2.0 on, so on 1.4 the kit's databases are SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import MetaData, Table, create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.pool import QueuePool, StaticPool

from shims.compat import SQLALCHEMY_2
from shims.settings import ConfigError

IN_MEMORY = ("sqlite://", "sqlite:///:memory:")


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20,
                pool_timeout: float = 10.0, sqlite_busy_timeout: float = 15.0) -> Engine:
    """`sqlite_busy_timeout`: seconds a SQLite connection waits for another process's lock
    (it sleeps in C, holding up every greenlet of the process: callers that must not stall,
    like the flag store, ask for less)."""
    url = normalise_url(url)
    options: dict[str, Any] = {}
    _make_sqlite_directory(url)
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": sqlite_busy_timeout, "check_same_thread": False}
    if url in IN_MEMORY:
        options["poolclass"] = StaticPool  # an in-memory database lives in its one connection
    else:
        # QueuePool named, not assumed: SQLAlchemy 1.4 gives a SQLite file a NullPool (a new
        # connection per checkout), which refuses these options; 2.0 gives it a QueuePool.
        options.update(poolclass=QueuePool, pool_size=pool_size, max_overflow=max_overflow,
                       pool_timeout=pool_timeout, pool_pre_ping=True)
    # future=True: SQLAlchemy 1.4's 2.0-style engine (Connection.commit, no autocommit),
    # the only kind 2.0 has, where the flag is accepted and changes nothing.
    engine = create_engine(url, future=True, **options)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def create_tables(metadata: MetaData, engine: Engine, tables: Sequence[Table] | None = None,
                  *, attempts: int = 3) -> None:
    """`metadata.create_all`, safe when several workers start on a fresh database at once.

    Each gunicorn worker creates the schema as it boots (no --preload). Two workers can
    both see a table missing and both create it; the loser gets "table already exists"
    (SQLite), DuplicateTable or a unique violation (PostgreSQL), and a worker that fails
    to boot makes gunicorn stop the whole app. Tables are created one at a time, in
    dependency order, so a lost race costs one retry of that table, which then finds it
    there; retrying the whole schema could lose again on the next table, and again.
    """
    wanted = None if tables is None else set(tables)
    for table in metadata.sorted_tables:
        if wanted is None or table in wanted:
            _create_table(table, engine, attempts)


def _create_table(table: Table, engine: Engine, attempts: int) -> None:
    for attempt in range(1, attempts + 1):
        try:
            table.create(engine, checkfirst=True)
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)


def lock_for_writing(connection: Connection) -> None:
    """Makes the connection's new transaction a writer from its first statement.

    SQLite: `BEGIN IMMEDIATE`. Python's sqlite3 would otherwise begin only at the first
    INSERT, so a transaction that reads first runs partly outside any transaction; and a
    deferred transaction that read before another process committed cannot write at all
    (SQLITE_BUSY_SNAPSHOT, without waiting). Also, a SAVEPOINT issued outside a transaction
    starts one that its RELEASE commits. Other databases begin for real already.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, not SQLAlchemy's psycopg2 default."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+psycopg://") and not SQLALCHEMY_2:
        # psycopg2 would block every greenlet of the worker on each query (no psycogreen).
        raise ConfigError(f"{make_url(url).render_as_string(hide_password=True)}: PostgreSQL "
                          "needs SQLAlchemy 2.0 or newer (its psycopg 3 dialect); this "
                          f"environment has SQLAlchemy {sqlalchemy.__version__}. Install "
                          "turnout[postgres], or keep SQLite until the app upgrades.")
    return url


def _make_sqlite_directory(url: str) -> None:
    """A fresh checkout has no run directory yet; SQLite would only say "unable to open"."""
    if url.startswith("sqlite:///") and url not in IN_MEMORY:
        directory = Path(url.removeprefix("sqlite:///")).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {directory} for the database {url}: "
                              f"{exc.strerror}") from exc


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
