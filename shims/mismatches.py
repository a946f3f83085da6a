"""Where shadow mismatches are kept: a bounded table next to the flags, read by every process.

Both answers are stored as JSON with the paths that differ, so a team can see
what the extracted service gets wrong. Each process records at most
`max_per_second` mismatches (the rest are still counted in metrics), and the
table keeps the newest `keep` rows per feature, so a systematic mismatch under
load cannot fill the disk or slow the database.

`record` is called by a shadow, on the serving worker's loop, and only queues the mismatch:
one writer greenlet writes what is queued when the loop is idle, as one batch in one
transaction, so no request waits behind a database write. A SQLite write waits at most
`busy_timeout` seconds for another process's lock (not the engine's long default, which
would stall the loop); a batch that cannot be written is dropped and logged
(`mismatch_not_recorded`, counted in `dropped`), as is a mismatch queued while
`max_pending` are waiting. `recent` writes this process's queue first; `flush` writes it now.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.lock import Semaphore
from sqlalchemy import (Column, DateTime, Integer, MetaData, String, Table, Text, delete, insert,
                        select)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from shims.logs import event
from shims.shadow import Mismatch
from shims.sql import create_tables

log = logging.getLogger("turnout.mismatches")

metadata = MetaData()
mismatches_table = Table(
    "turnout_mismatches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("feature", String(100), nullable=False, index=True),
    Column("method", String(200), nullable=False),
    Column("primary_side", String(10), nullable=False),
    Column("differences", Text, nullable=False),
    Column("primary_value", Text, nullable=False),
    Column("shadow_value", Text, nullable=False),
)


@dataclass(frozen=True)
class MismatchRecord:
    id: int
    at: dt.datetime
    feature: str
    method: str
    primary_side: str
    differences: list[str]
    primary: Any
    shadow: Any


class SqlMismatchLog:
    def __init__(self, engine: Engine, *, keep: int = 500, max_per_second: float = 20.0,
                 clock=time.monotonic, max_pending: int = 100, busy_timeout: float = 0.05):
        self._engine = engine
        self._keep = keep
        self._interval = 1.0 / max_per_second
        self._clock = clock
        self._last = float("-inf")
        self._pending: deque[tuple[dt.datetime, Mismatch]] = deque()
        self._max_pending = max_pending
        self._busy_timeout_ms = max(1, round(busy_timeout * 1000))
        self._writer: gevent.Greenlet | None = None
        self._writing = Semaphore()  # a flush waits for a batch being written to commit
        self.dropped = 0  # mismatches not written: queue full, or their batch failed

    def create_schema(self) -> None:
        create_tables(metadata, self._engine)  # safe when several workers boot at once

    def record(self, mismatch: Mismatch) -> None:
        """Queues `mismatch` for the writer greenlet; never touches the database."""
        now = self._clock()
        if now - self._last < self._interval:
            return  # rate-limited: the metric still counts it
        self._last = now
        if len(self._pending) >= self._max_pending:
            self._dropped(1, "the queue is full")
            return
        self._pending.append((dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), mismatch))
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._write_when_idle)

    def _write_when_idle(self) -> None:
        while self._pending:
            gevent.idle()  # requests first: the rows wait for a quiet moment
            self.flush()

    def flush(self) -> int:
        """Writes every queued mismatch now, in one transaction; returns how many."""
        with self._writing:
            return self._write([self._pending.popleft() for _ in range(len(self._pending))])

    def _write(self, batch: list[tuple[dt.datetime, Mismatch]]) -> int:
        if not batch:
            return 0
        try:
            with self._engine.begin() as connection, self._short_lock_wait(connection):
                connection.execute(insert(mismatches_table), [_row(at, m) for at, m in batch])
                for feature in {m.feature for _, m in batch}:
                    self._prune(connection, feature)
        except SQLAlchemyError as exc:  # locked past busy_timeout, or gone: never the request's
            self._dropped(len(batch), repr(exc))
            return 0
        return len(batch)

    @contextmanager
    def _short_lock_wait(self, connection: Connection) -> Iterator[None]:
        """SQLite: wait at most `busy_timeout` for another writer, then the usual again."""
        if connection.dialect.name != "sqlite":
            yield
            return
        usual = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(usual)}")

    def _prune(self, connection: Connection, feature: str) -> None:
        oldest_kept = (select(mismatches_table.c.id)
                       .where(mismatches_table.c.feature == feature)
                       .order_by(mismatches_table.c.id.desc())
                       .offset(self._keep).limit(1)).scalar_subquery()
        connection.execute(delete(mismatches_table).where(
            mismatches_table.c.feature == feature, mismatches_table.c.id <= oldest_kept))

    def _dropped(self, count: int, reason: str) -> None:
        self.dropped += count
        event(log, "mismatch_not_recorded", logging.ERROR, count=count, error=reason,
              meaning="the mismatches are still counted in turnout_shadow_comparisons_total")

    def recent(self, feature: str | None = None, limit: int = 50) -> list[MismatchRecord]:
        self.flush()  # this process's own queue first
        query = select(mismatches_table).order_by(mismatches_table.c.id.desc()).limit(limit)
        if feature is not None:
            query = query.where(mismatches_table.c.feature == feature)
        with self._engine.connect() as connection:
            return [MismatchRecord(id=row.id, at=row.at, feature=row.feature, method=row.method,
                                   primary_side=row.primary_side,
                                   differences=json.loads(row.differences),
                                   primary=json.loads(row.primary_value),
                                   shadow=json.loads(row.shadow_value))
                    for row in connection.execute(query)]


def _row(at: dt.datetime, mismatch: Mismatch) -> dict[str, Any]:
    return {"at": at, "feature": mismatch.feature, "method": mismatch.method,
            "primary_side": mismatch.primary_side,
            "differences": json.dumps(list(mismatch.differences)),
            "primary_value": json.dumps(mismatch.primary, default=str),
            "shadow_value": json.dumps(mismatch.shadow, default=str)}
