"""Where shadow mismatches are kept: a bounded table next to the flags, read by every process.

Both answers are stored as JSON with the paths that differ, so a team can see
what the extracted service gets wrong. Each process records at most
`max_per_second` mismatches (the rest are still counted in metrics), and the
table keeps the newest `keep` rows per feature, so a systematic mismatch under
load cannot fill the disk or slow the database.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (Column, DateTime, Integer, MetaData, String, Table, Text, delete, insert,
                        select)
from sqlalchemy.engine import Engine

from shims.shadow import Mismatch
from shims.sql import create_tables

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
                 clock=time.monotonic):
        self._engine = engine
        self._keep = keep
        self._interval = 1.0 / max_per_second
        self._clock = clock
        self._last = float("-inf")

    def create_schema(self) -> None:
        create_tables(metadata, self._engine)  # safe when several workers boot at once

    def record(self, mismatch: Mismatch) -> None:
        now = self._clock()
        if now - self._last < self._interval:
            return  # rate-limited: the metric still counts it
        self._last = now
        with self._engine.begin() as connection:
            connection.execute(insert(mismatches_table).values(
                at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                feature=mismatch.feature, method=mismatch.method,
                primary_side=mismatch.primary_side,
                differences=json.dumps(list(mismatch.differences)),
                primary_value=json.dumps(mismatch.primary, default=str),
                shadow_value=json.dumps(mismatch.shadow, default=str)))
            oldest_kept = (select(mismatches_table.c.id)
                           .where(mismatches_table.c.feature == mismatch.feature)
                           .order_by(mismatches_table.c.id.desc())
                           .offset(self._keep).limit(1)).scalar_subquery()
            connection.execute(delete(mismatches_table).where(
                mismatches_table.c.feature == mismatch.feature,
                mismatches_table.c.id <= oldest_kept))

    def recent(self, feature: str | None = None, limit: int = 50) -> list[MismatchRecord]:
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
