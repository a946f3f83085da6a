"""The flag store: one SQL database every process reads (SQLite file by default,
PostgreSQL when several hosts share the flags), with a version number and an audit log.

Every change bumps `turnout_state.version` in the same transaction as the change
and its audit row, so a reader that sees a new version sees the whole change,
and the per-process cache only needs the one-row version read to stay current.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from shims.flags.model import (
    MODES,
    AuditEntry,
    FeatureInfo,
    Flag,
    FlagError,
    FlagSnapshot,
    describe_flag,
    validate_flag,
)
from shims.sql import create_tables, make_engine

metadata = MetaData()

flags_table = Table(
    "turnout_flags", metadata,
    Column("feature", String(100), primary_key=True),
    Column("mode", String(20), nullable=False),
    Column("percent", Float, nullable=False, default=0.0),
    Column("updated_at", DateTime, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

state_table = Table(
    "turnout_state", metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("killed", Boolean, nullable=False, default=False),
)

audit_table = Table(
    "turnout_audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("feature", String(100), nullable=False, index=True),
    Column("old", Text, nullable=False),
    Column("new", Text, nullable=False),
)

KILL_SWITCH = "*"  # the audit log's name for the global kill switch


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


class SqlFlagStore:
    def __init__(self, engine: Engine, features: Mapping[str, FeatureInfo]):
        self.engine = engine
        self.features = dict(features)

    @classmethod
    def from_url(cls, url: str, features: Mapping[str, FeatureInfo]) -> SqlFlagStore:
        return cls(make_engine(url, pool_size=2, max_overflow=4), features)

    def create_schema(self) -> None:
        create_tables(metadata, self.engine)  # safe when several workers boot at once
        with self.engine.begin() as connection:
            try:
                with connection.begin_nested():
                    connection.execute(insert(state_table).values(id=1, version=1, killed=False))
            except IntegrityError:
                pass  # another process created it first

    def version(self) -> int:
        """The cheap read the caches poll: one row, one column."""
        with self._reading() as connection:
            return connection.execute(select(state_table.c.version)
                                      .where(state_table.c.id == 1)).scalar_one()

    def snapshot(self) -> FlagSnapshot:
        """Every flag, read in one transaction; rows that break the rules are reported,
        not trusted (someone may have edited the table by hand)."""
        with self._reading() as connection:
            state = connection.execute(select(state_table).where(state_table.c.id == 1)).one()
            rows = connection.execute(select(flags_table)).all()
        flags, problems = {}, []
        for row in rows:
            try:
                flags[row.feature] = validate_flag(self.features, row.feature, row.mode,
                                                   row.percent if row.mode == "canary" else None)
            except FlagError as exc:
                problems.append((row.feature, exc.message))
        return FlagSnapshot(version=state.version, killed=bool(state.killed), flags=flags,
                            problems=tuple(problems))

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A pooled connection whose failure discards it instead of pooling it again.

        A SQLite connection that once found the file unreadable ("file is not a database")
        keeps failing after the file is repaired, so a worker whose pool kept it would never
        read its flags again; a fresh connection reads the repaired file at once."""
        with self.engine.connect() as connection:
            try:
                yield connection
            except DBAPIError:
                connection.invalidate()
                raise

    def set(self, feature: str, mode: str, percent: object = None, *, actor: str) -> Flag:
        flag = validate_flag(self.features, feature, mode, percent)
        with self.engine.begin() as connection:
            old = self._current(connection, feature)
            values = {"mode": flag.mode, "percent": flag.percent, "updated_at": utcnow(),
                      "updated_by": actor}
            if old is None:
                connection.execute(insert(flags_table).values(feature=feature, **values))
            else:
                connection.execute(update(flags_table).where(flags_table.c.feature == feature)
                                   .values(**values))
            self._audit(connection, actor, feature, describe_flag(old or Flag(feature)),
                        describe_flag(flag))
        return flag

    def kill(self, *, actor: str) -> None:
        """Send every feature to local at once, keeping each flag to restore later."""
        self._set_killed(True, actor)

    def unkill(self, *, actor: str) -> None:
        self._set_killed(False, actor)

    def history(self, feature: str | None = None, limit: int = 50) -> list[AuditEntry]:
        if feature is not None and feature not in self.features and feature != KILL_SWITCH:
            validate_flag(self.features, feature, "local")  # raises: unknown feature
        query = select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if feature is not None:
            query = query.where(audit_table.c.feature == feature)
        with self.engine.connect() as connection:
            return [AuditEntry(id=row.id, at=row.at, actor=row.actor, feature=row.feature,
                               old=row.old, new=row.new) for row in connection.execute(query)]

    def _set_killed(self, killed: bool, actor: str) -> None:
        with self.engine.begin() as connection:
            was = connection.execute(select(state_table.c.killed)
                                     .where(state_table.c.id == 1)).scalar_one()
            connection.execute(update(state_table).where(state_table.c.id == 1)
                               .values(killed=killed))
            self._audit(connection, actor, KILL_SWITCH, "killed" if was else "live",
                        "killed" if killed else "live")

    def _current(self, connection: Connection, feature: str) -> Flag | None:
        row = connection.execute(select(flags_table)
                                 .where(flags_table.c.feature == feature)).one_or_none()
        if row is None:
            return None
        mode = row.mode if row.mode in MODES else "local"
        return Flag(feature=feature, mode=mode, percent=row.percent or 0.0)

    def _audit(self, connection: Connection, actor: str, feature: str, old: str,
               new: str) -> None:
        connection.execute(insert(audit_table).values(at=utcnow(), actor=actor, feature=feature,
                                                      old=old, new=new))
        # The version bump is what every worker's cache watches for.
        connection.execute(update(state_table).where(state_table.c.id == 1)
                           .values(version=state_table.c.version + 1))
