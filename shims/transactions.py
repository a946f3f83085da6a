"""Sessions that join the transaction a caller holds open, so one commit covers both.

A keyed write must commit its domain rows and the record of its outcome together
(shims/outcomes.py): a crash between two commits would leave a write that a retry
applies again. The implementations (LocalRuns, LocalAccounts, ...) open their own
sessions from a `sessionmaker` and must not know about keys. So their sessionmaker
makes `JoinableSession`s: while `joined(connection)` is in force in this greenlet,
a session bound to that connection's engine uses the connection instead of one of
its own, and its `begin()` block becomes a SAVEPOINT (`join_transaction_mode=
"create_savepoint"`): its rollback undoes its own work, its commit waits for the
caller's. Session events (an `after_flush` writing outbox rows, say) ride along in
the same transaction, since the writes still go through the Session.

SQLAlchemy 1.4 has no `join_transaction_mode`: a session given a connection already in
a transaction joins it for rollback only (its rollback would end the caller's transaction
too). There the session opens the SAVEPOINT itself, before it first uses the connection,
and 1.4 then commits or rolls back that SAVEPOINT as 2.0's "create_savepoint" does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy.engine import Connection, Engine, Transaction
from sqlalchemy.orm import Session, sessionmaker

from shims.compat import SQLALCHEMY_2

_joined: ContextVar[Connection | None] = ContextVar("turnout_joined_connection", default=None)


class JoinableSession(Session):
    _savepoint: Transaction | None = None  # SQLAlchemy 1.4 only: the one this session opened

    def get_bind(self, mapper: Any = None, **kw: Any) -> Any:
        connection = _joined.get()
        if connection is not None and connection.engine is self.bind:
            if not SQLALCHEMY_2 and (self._savepoint is None or not self._savepoint.is_active):
                self._savepoint = connection.begin_nested()
            return connection
        return super().get_bind(mapper, **kw)


def joinable_sessions(engine: Engine) -> sessionmaker:
    # expire_on_commit=False: services convert rows to frozen dataclasses after commit.
    if SQLALCHEMY_2:
        return sessionmaker(engine, class_=JoinableSession, expire_on_commit=False,
                            join_transaction_mode="create_savepoint")
    # future=True: 1.4's 2.0-style Session (autobegin, commit as 2.0 does), 2.0's only kind.
    return sessionmaker(engine, class_=JoinableSession, expire_on_commit=False, future=True)


@contextmanager
def joined(connection: Connection) -> Iterator[None]:
    """Sessions of the connection's engine use it, in this greenlet, for the block."""
    token = _joined.set(connection)
    try:
        yield
    finally:
        _joined.reset(token)


def joined_to(engine: Engine) -> bool:
    """Is a transaction on `engine` already held open here (a keyed call inside another)?"""
    connection = _joined.get()
    return connection is not None and connection.engine is engine


def holds_sqlite_write_lock() -> bool:
    """Does this greenlet hold a SQLite write transaction open (a keyed write's)?

    Such a greenlet must not yield to the loop until it commits: another greenlet of the
    process that then asks for the write lock waits in SQLite's busy handler, which sleeps
    in C and holds up the whole loop, the holder included, until its timeout ("database is
    locked"). Work that would otherwise go to a thread and yield runs in place instead.
    """
    connection = _joined.get()
    return connection is not None and connection.dialect.name == "sqlite"
