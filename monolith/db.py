"""The monolith's database: one engine per app, sessions opened per service call.

SQLite is the embedded default. Several gunicorn workers write the same file,
so every connection gets WAL journalling (readers never block the writer) and
a busy timeout (a writer waits for the lock instead of failing at once).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from monolith.models import Base


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20,
                pool_timeout: float = 10.0) -> Engine:
    options: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 15, "check_same_thread": False}
    if url not in ("sqlite://", "sqlite:///:memory:"):
        options.update(pool_size=pool_size, max_overflow=max_overflow,
                       pool_timeout=pool_timeout, pool_pre_ping=True)
    else:
        from sqlalchemy.pool import StaticPool

        # An in-memory database lives in its one connection: share it.
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessions(engine: Engine) -> sessionmaker:
    # expire_on_commit=False: services convert rows to frozen dataclasses after commit.
    return sessionmaker(engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)
