"""The outbox: each side of a feature that owns data records, in the same transaction as
the write, which rows it changed, so that no change can be lost on its way to the other side.

One row per changed row (`entity`, `key`), not one per change: the table is a set of
"dirty" rows with the version of their latest change, which is all a mirror needs,
because the mirror copies a row's *current* state. That keeps the table as small as the
data it tracks and needs no commit-ordered sequence (PostgreSQL sequences are not).

- `version` orders the changes of one row across both sides. It is a hybrid clock:
  `max(now in microseconds, previous version + 1)`, so a later write always carries a
  larger version, whichever side made it, and a mirror never replaces a row with an
  older state than the one it holds (`shims.mirror`).
- `pending` is true until the change has been applied on the other side; the applier
  clears it only if the version is still the one it applied (compare-and-clear), so a
  change made meanwhile stays pending.
- A deleted row keeps its outbox row (a tombstone): deletes travel as explicit
  changes, never inferred from a row missing in an export.

Writes made through a tracked SQLAlchemy `sessionmaker` are recorded by an
`after_flush` hook (`OutboxRecorder.track`); mirrored changes are applied through Core
on a connection and record their version with `pending` false, so a mirror never
bounces back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (BigInteger, Boolean, Column, Float, MetaData, String, Table, and_, case,
                        event, func, inspect, select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from shims.sync import Backlog, PendingChange

metadata = MetaData()

outbox_table = Table(
    "turnout_outbox", metadata,
    Column("entity", String(50), primary_key=True),
    Column("key", BigInteger, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    Column("pending", Boolean, nullable=False, index=True),
    Column("changed_at", Float, nullable=False),  # unix time of the change: the mirror's lag
)


def clock_version(now: float | None = None) -> int:
    return int((time.time() if now is None else now) * 1_000_000)


def record(connection: Connection, changes: Iterable[tuple[str, int]]) -> None:
    """Mark each (entity, key) changed now, in the caller's transaction."""
    now = time.time()
    rows = [{"entity": entity, "key": key, "version": clock_version(now), "pending": True,
             "changed_at": now} for entity, key in dict.fromkeys(changes)]
    if rows:
        connection.execute(_upsert(connection, rows))


def _upsert(connection: Connection, rows: list[dict[str, Any]]):
    """INSERT ... ON CONFLICT: a row changed again gets max(now, version + 1)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(outbox_table).values(rows)
    excluded, table = statement.excluded, outbox_table
    return statement.on_conflict_do_update(
        index_elements=[table.c.entity, table.c.key],
        set_={"version": case((excluded.version > table.c.version, excluded.version),
                              else_=table.c.version + 1),
              "pending": excluded.pending,
              # A change already waiting keeps its age: lag counts from the first unmirrored one.
              "changed_at": case((table.c.pending, table.c.changed_at),
                                 else_=excluded.changed_at)})


def versions(connection: Connection, entity: str, keys: Iterable[int]) -> dict[int, int]:
    keys = list(keys)
    if not keys:
        return {}
    found = connection.execute(select(outbox_table.c.key, outbox_table.c.version).where(
        outbox_table.c.entity == entity, outbox_table.c.key.in_(keys)))
    return dict(found.all())


def store_version(connection: Connection, entity: str, key: int, version: int) -> None:
    """A mirrored change: this side now holds `version` of the row, nothing to send back."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(outbox_table).values(entity=entity, key=key, version=version,
                                                    pending=False, changed_at=time.time())
    connection.execute(statement.on_conflict_do_update(
        index_elements=[outbox_table.c.entity, outbox_table.c.key],
        set_={"version": statement.excluded.version, "pending": False}))


def pending(connection: Connection, limit: int) -> list[PendingChange]:
    """The oldest changes still to mirror, oldest version first (parents were written first)."""
    rows = connection.execute(
        select(outbox_table.c.entity, outbox_table.c.key, outbox_table.c.version)
        .where(outbox_table.c.pending).order_by(outbox_table.c.version).limit(limit))
    return [PendingChange(*row) for row in rows]


def settle(connection: Connection, entries: Iterable[PendingChange]) -> int:
    """Clear `pending` of each entry whose version is still the one that was mirrored."""
    settled = 0
    for entry in entries:
        settled += connection.execute(update(outbox_table).where(
            and_(outbox_table.c.entity == entry.entity, outbox_table.c.key == entry.id,
                 outbox_table.c.version == entry.version, outbox_table.c.pending))
            .values(pending=False)).rowcount
    return settled


def backlog(connection: Connection, now: float | None = None) -> Backlog:
    count, oldest = connection.execute(
        select(func.count(), func.min(outbox_table.c.changed_at))
        .where(outbox_table.c.pending)).one()
    age = 0.0 if oldest is None else max(0.0, (time.time() if now is None else now) - oldest)
    return Backlog(entries=int(count), oldest_seconds=age)


class OutboxRecorder:
    """Records every change that a tracked session flushes to one of `tables`.

    `tables` maps each tracked table to its entity name ("users" -> "user"). Only rows
    with a single integer primary key are tracked: that is what the mirror moves.
    """

    def __init__(self, tables: Mapping[Table, str]):
        self._entities = dict(tables)

    def track(self, sessions: sessionmaker) -> sessionmaker:
        event.listen(sessions, "after_flush", self._after_flush)
        return sessions

    def _after_flush(self, session: Session, _context: Any) -> None:
        changed = []
        for instance in [*session.new, *session.dirty, *session.deleted]:
            entity = self._entities.get(getattr(type(instance), "__table__", None))
            if entity is None:
                continue
            if instance in session.dirty and not session.is_modified(instance):
                continue  # touched but nothing written
            # The primary key, not the identity: new rows get theirs only after this hook.
            key = inspect(instance).mapper.primary_key_from_instance(instance)
            if key and key[0] is not None:
                changed.append((entity, key[0]))
        if changed:
            record(session.connection(), changed)
