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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

_joined: ContextVar[Connection | None] = ContextVar("turnout_joined_connection", default=None)


class JoinableSession(Session):
    def get_bind(self, mapper: Any = None, **kw: Any) -> Any:
        connection = _joined.get()
        if connection is not None and connection.engine is self.bind:
            return connection
        return super().get_bind(mapper, **kw)


def joinable_sessions(engine: Engine) -> sessionmaker:
    # expire_on_commit=False: services convert rows to frozen dataclasses after commit.
    return sessionmaker(engine, class_=JoinableSession, expire_on_commit=False,
                        join_transaction_mode="create_savepoint")


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
