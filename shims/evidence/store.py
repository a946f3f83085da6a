"""The shared evidence tables: every worker adds its per-bucket counts, readers merge them.

Two tables (one truth for every process and host that shares the flag store):
`turnout_evidence_calls` (calls, errors, total seconds and a latency histogram per bucket,
feature, method and side) and `turnout_evidence_counts` (named counts and gauges per
bucket: shadow results, fallbacks, mirrored writes, backlogs, breaker samples). A flush is
one transaction of upserts that *add* to what other workers wrote for the same key (and
keep the highest gauge), on SQLite (3.24+) and PostgreSQL alike (`INSERT ... ON CONFLICT
DO UPDATE`).

They live in the evidence database (`evidence_url`): the flag store's own database on
PostgreSQL; beside a SQLite flag store, a file of their own (`flags-evidence.db`), because
a SQLite flag store is an operator's file (copied, restored by hand, checked at every
look) written only when a flag changes, and every worker writing into it every few seconds
would hold its lock and keep its WAL full of pages that a copy restored by hand would be
overlaid with. The evidence file is disposable: its tables are made again if it is lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (BigInteger, Column, Float, MetaData, String, Table, and_, case, delete,
                        insert, select, update)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shims.evidence import histogram
from shims.evidence.model import CallRow, CountRow, Rows
from shims.flags.sqlite_file import sqlite_path
from shims.sql import create_tables, make_engine

HISTOGRAM_COLUMNS = tuple(f"h{index:02d}" for index in range(histogram.SLOTS))

metadata = MetaData()
calls_table = Table(
    "turnout_evidence_calls", metadata,
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("feature", String(100), primary_key=True),
    Column("method", String(200), primary_key=True),
    Column("side", String(10), primary_key=True),
    Column("calls", BigInteger, nullable=False, default=0),
    Column("errors", BigInteger, nullable=False, default=0),
    Column("seconds", Float, nullable=False, default=0.0),
    *(Column(name, BigInteger, nullable=False, default=0) for name in HISTOGRAM_COLUMNS),
)
counts_table = Table(
    "turnout_evidence_counts", metadata,
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("feature", String(100), primary_key=True),
    Column("method", String(200), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False, default=0),
    Column("peak", Float, nullable=False, default=0.0),
)
CALL_KEYS = ("bucket", "feature", "method", "side")
COUNT_KEYS = ("bucket", "feature", "method", "name")
# sqlite3 waits for another process's lock in C, holding up every greenlet of the worker:
# a flush that cannot have the lock this soon gives its rows back for the next one.
BUSY_TIMEOUT = 0.25
EVIDENCE_FILE = "flags-evidence.db"


def evidence_url(flags_url: str, given: str | None = None) -> str:
    """Where the evidence lives: `given` (TURNOUT_EVIDENCE_URL), else beside a SQLite flag
    store in a file of its own, else the flag store's database."""
    if given:
        return given
    path = sqlite_path(flags_url)
    return f"sqlite:///{path.with_name(EVIDENCE_FILE)}" if path is not None else flags_url


def evidence_engine(url: str) -> Engine:
    return make_engine(url, pool_size=2, max_overflow=4, sqlite_busy_timeout=BUSY_TIMEOUT)


class SqlEvidenceStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._ready = False

    def create_schema(self) -> None:
        create_tables(metadata, self.engine)  # safe when several workers boot at once
        self._ready = True

    def add(self, rows: Rows) -> None:
        """Adds these rows to the table's, in one transaction."""
        if not rows:
            return
        self._prepare()
        with self._again_if_lost(), self.engine.begin() as connection:
            if rows.calls:
                _upsert(connection, calls_table, CALL_KEYS,
                        ("calls", "errors", "seconds", *HISTOGRAM_COLUMNS), (),
                        [_call_values(row) for row in rows.calls])
            if rows.counts:
                _upsert(connection, counts_table, COUNT_KEYS, ("count",), ("peak",),
                        [_count_values(row) for row in rows.counts])

    def read(self, since: int, until: int, features: frozenset[str] | None = None) -> Rows:
        """Every row of the buckets that started in [since, until)."""
        self._prepare()
        with self.engine.connect() as connection:
            calls = connection.execute(_window(calls_table, since, until, features)).all()
            counts = connection.execute(_window(counts_table, since, until, features)).all()
        return Rows(calls=tuple(_call_row(row) for row in calls),
                    counts=tuple(CountRow(row.bucket, row.feature, row.method, row.name,
                                          row.count, row.peak) for row in counts))

    def prune(self, before: int) -> int:
        """Drops the buckets that started before `before`; how many rows went."""
        self._prepare()
        with self._again_if_lost(), self.engine.begin() as connection:
            return sum(connection.execute(delete(table).where(table.c.bucket < before)).rowcount
                       for table in (calls_table, counts_table))

    def _prepare(self) -> None:
        if not self._ready:
            self.create_schema()

    @contextmanager
    def _again_if_lost(self) -> Iterator[None]:
        """A failed write makes the tables again next time, in case the file was lost."""
        try:
            yield
        except Exception:
            self._ready = False
            raise


def _window(table: Table, since: int, until: int, features: frozenset[str] | None):
    query = select(table).where(table.c.bucket >= since, table.c.bucket < until)
    return query if features is None else query.where(table.c.feature.in_(sorted(features)))


def _call_values(row: CallRow) -> dict[str, Any]:
    return {"bucket": row.bucket, "feature": row.feature, "method": row.method,
            "side": row.side, "calls": row.calls, "errors": row.errors,
            "seconds": row.seconds, **dict(zip(HISTOGRAM_COLUMNS, row.histogram, strict=True))}


def _count_values(row: CountRow) -> dict[str, Any]:
    return {"bucket": row.bucket, "feature": row.feature, "method": row.method,
            "name": row.name, "count": row.count, "peak": row.peak}


def _call_row(row: Any) -> CallRow:
    return CallRow(row.bucket, row.feature, row.method, row.side, row.calls, row.errors,
                   row.seconds, tuple(getattr(row, name) for name in HISTOGRAM_COLUMNS))


def _upsert(connection: Connection, table: Table, keys: Sequence[str], added: Sequence[str],
            peaks: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """INSERT each row, or add its `added` columns to (and keep the higher of its `peaks`
    columns with) the row already there under the same keys."""
    dialect = connection.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        for values in rows:
            _upsert_one(connection, table, keys, added, peaks, values)
        return
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    statement = dialect_insert(table)
    excluded = statement.excluded
    changes = {name: table.c[name] + excluded[name] for name in added}
    changes.update({name: case((excluded[name] > table.c[name], excluded[name]),
                               else_=table.c[name]) for name in peaks})
    connection.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=changes),
                       rows)


def _upsert_one(connection: Connection, table: Table, keys: Sequence[str],
                added: Sequence[str], peaks: Sequence[str], values: dict[str, Any]) -> None:
    """The same for a database without ON CONFLICT: update, else insert, else (another
    worker inserted it meanwhile) update."""
    match = and_(*(table.c[key] == values[key] for key in keys))
    changes = {name: table.c[name] + values[name] for name in added}
    changes.update({name: case((table.c[name] < values[name], values[name]),
                               else_=table.c[name]) for name in peaks})
    if connection.execute(update(table).where(match).values(**changes)).rowcount:
        return
    try:
        with connection.begin_nested():
            connection.execute(insert(table).values(**values))
    except IntegrityError:
        connection.execute(update(table).where(match).values(**changes))
