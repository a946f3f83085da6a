"""The flag store: one SQL database every process reads (SQLite file by default,
PostgreSQL when several hosts share the flags), with a version number and an audit log.

Every change moves `turnout_state.version` forward in the same transaction as the change
and its audit row, so a reader that sees a new version sees the whole change, and the
per-process cache only needs the one-row version read to stay current.

Versions are times: milliseconds since the epoch, and always at least one more than the
version before (`next_version`), so they never repeat or go back even if a clock does.
That makes a restored copy of the store recognisable: it carries the version of the day it
was made, older than what every worker serves, and every change written after the restore
carries a newer version than any worker has seen. (Stores from before kept small integer
versions; their next change simply jumps to the time.)

A SQLite store's file is checked before it is trusted (`sqlite_file.FileWatch`), and every
failure becomes a `FlagStoreError` that names the file and what to do (`problems`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from shims.flags import last_write, problems
from shims.flags.last_write import LastWrite
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
from shims.errors import Conflict
from shims.flags.problems import FlagStoreRestored
from shims.flags.sqlite_file import FileWatch, sqlite_path
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
    Column("version", BigInteger, nullable=False),  # milliseconds: past 32 bits
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

KILL_SWITCH = "*"  # the audit log's name for the global kill switch (and the store itself)
# A worker's flag store waits at most this long for another process's SQLite lock: sqlite3
# waits in C, holding up every greenlet of the worker (docs/design.md).
WORKER_BUSY_TIMEOUT = 2.0
CHECKPOINT_BUSY_TIMEOUT = 0.2


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def next_version(current: int, now_ms: int) -> int:
    return max(now_ms, current + 1)


def version_time(version: int) -> str:
    """When a version was written, for people; versions of older stores were counters."""
    if version < 10**12:
        return f"version {version}"
    written = dt.datetime.fromtimestamp(version / 1000, dt.timezone.utc)
    return f"version {version} of {written:%Y-%m-%d %H:%M:%S} UTC"


class FlagMoved(Conflict):
    """A compare-and-set refused: the flag is no longer the one the move was decided on."""

    code = "flag_moved"


@dataclass(frozen=True)
class Restored:
    """The store's file is an older copy than the newest change written to it."""

    version: int
    last: LastWrite

    def describe(self, where: str) -> str:
        return (f"the flag store {where} carries {version_time(self.version)}, older than "
                f"version {self.last.version} written at {self.last.at} by {self.last.by}: "
                "it was restored from an older copy, or replaced. Workers keep serving what "
                "they served. `turnout flags list` shows this copy's flags, `turnout flags "
                "repair` makes them current (the kill switch stays as last set); `turnout "
                "flags kill` works as always.")


class SqlFlagStore:
    def __init__(self, engine: Engine, features: Mapping[str, FeatureInfo], *,
                 clock: Callable[[], float] = time.time,
                 companions: tuple[MetaData, ...] = ()):
        """`companions`: other tables kept in the same database (the mismatch log), which a
        store started afresh (`recovery.start_afresh`) must hold too."""
        self.engine = engine
        self.features = dict(features)
        self.companions = companions
        self._clock = clock
        path = sqlite_path(engine.url)
        self.file = FileWatch(path) if path is not None else None
        self.where = str(path) if path is not None else \
            engine.url.render_as_string(hide_password=True)

    @classmethod
    def from_url(cls, url: str, features: Mapping[str, FeatureInfo], *,
                 busy_timeout: float = WORKER_BUSY_TIMEOUT,
                 clock: Callable[[], float] = time.time,
                 companions: tuple[MetaData, ...] = ()) -> SqlFlagStore:
        engine = make_engine(url, pool_size=2, max_overflow=4, sqlite_busy_timeout=busy_timeout)
        return cls(engine, features, clock=clock, companions=companions)

    # --- opening -------------------------------------------------------------------------

    def open(self) -> None:
        """Ready to use: a new store gets its schema; a SQLite store that has been written to
        must be there and whole (an emptied file is not quietly made a new, all-local store)."""
        if self.file is not None and self.last_write() is not None:
            self.verify()
        self.create_schema()

    def create_schema(self) -> None:
        with self._failures():
            create_tables(metadata, self.engine)  # safe when several workers boot at once
            self._widen_version_column()
            with self.engine.begin() as connection:
                if connection.execute(select(state_table.c.id)
                                      .where(state_table.c.id == 1)).first() is not None:
                    return  # no write, so no lock to wait for
                try:
                    with connection.begin_nested():
                        connection.execute(insert(state_table).values(
                            id=1, version=self.next_floor(), killed=False))
                except IntegrityError:
                    pass  # another process created it first

    def _widen_version_column(self) -> None:
        """PostgreSQL stores made before versions were times hold them in 32 bits."""
        if self.engine.dialect.name != "postgresql":
            return  # SQLite's INTEGER already holds 64 bits
        with self.engine.begin() as connection:
            kind = connection.execute(text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = 'turnout_state' AND column_name = "
                "'version'")).scalar()
            if kind == "integer":
                connection.execute(text(
                    "ALTER TABLE turnout_state ALTER COLUMN version TYPE BIGINT"))

    def verify(self) -> None:
        """SQLite: one stat; the file is checked again (and the pool reopened) when it moved."""
        if self.file is not None:
            self.file.verify(self.engine)

    # --- reading -------------------------------------------------------------------------

    def version(self) -> int:
        """The cheap read the caches poll: one row, one column (and a stat of the file)."""
        with self._reading() as connection:
            found = connection.execute(select(state_table.c.version)
                                       .where(state_table.c.id == 1)).scalar_one_or_none()
        if found is None:
            raise problems.damaged(self.where, problems.NO_SCHEMA, "has no state row")
        return found

    def snapshot(self) -> FlagSnapshot:
        """Every flag, read in one transaction; rows that break the rules are reported,
        not trusted (someone may have edited the table by hand)."""
        with self._reading() as connection:
            state = connection.execute(select(state_table)
                                       .where(state_table.c.id == 1)).one_or_none()
            rows = connection.execute(select(flags_table)).all()
        if state is None:
            raise problems.damaged(self.where, problems.NO_SCHEMA, "has no state row")
        flags, troubles = {}, []
        for row in rows:
            try:
                flags[row.feature] = validate_flag(self.features, row.feature, row.mode,
                                                   row.percent if row.mode == "canary" else None)
            except FlagError as exc:
                troubles.append((row.feature, exc.message))
        return FlagSnapshot(version=state.version, killed=bool(state.killed), flags=flags,
                            problems=tuple(troubles))

    def history(self, feature: str | None = None, limit: int = 50) -> list[AuditEntry]:
        if feature is not None and feature not in self.features and feature != KILL_SWITCH:
            validate_flag(self.features, feature, "local")  # raises: unknown feature
        query = select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if feature is not None:
            query = query.where(audit_table.c.feature == feature)
        with self._reading() as connection:
            return [AuditEntry(id=row.id, at=row.at, actor=row.actor, feature=row.feature,
                               old=row.old, new=row.new) for row in connection.execute(query)]

    def last_write(self) -> LastWrite | None:
        return last_write.read(self.file.path) if self.file is not None else None

    def restored(self) -> Restored | None:
        """The file went back in time: it is older than the newest change written to it."""
        last = self.last_write()
        if last is None:
            return None
        current = self.version()
        return Restored(current, last) if current < last.version else None

    # --- changing ------------------------------------------------------------------------

    def set(self, feature: str, mode: str, percent: object = None, *, actor: str,
            expected: Flag | None = None) -> Flag:
        """`expected`: refuse (FlagMoved) unless the flag is still this one, so a move
        decided on one flag is not made over someone else's newer change."""
        flag = validate_flag(self.features, feature, mode, percent)
        self._refuse_if_restored()
        with self._writing(actor) as connection:
            old = self._current(connection, feature)
            if expected is not None and (old or Flag(feature)) != expected:
                raise FlagMoved(f"{feature} is at {describe_flag(old or Flag(feature))} now, "
                                f"not {describe_flag(expected)} as when the move was decided: "
                                "someone else moved it meanwhile; look again")
            self._put(connection, flag, actor, exists=old is not None)
            self._audit(connection, actor, feature, describe_flag(old or Flag(feature)),
                        describe_flag(flag))
        return flag

    def record(self, actor: str, feature: str, old: str, new: str,
               change: Callable[[Connection], None]) -> None:
        """A change of something kept beside the flags (the guard's switches), made in one
        transaction with its audit row and a new version, as a flag change is."""
        with self._writing(actor) as connection:
            change(connection)
            self._audit(connection, actor, feature, old, new)

    def kill(self, *, actor: str) -> None:
        """Send every feature to local at once, keeping each flag to restore later. Never
        refused for a restored file: it is safe whatever the file says."""
        self._set_killed(True, actor)

    def unkill(self, *, actor: str) -> None:
        self._refuse_if_restored()
        self._set_killed(False, actor)

    def adopt(self, restored: Restored, *, actor: str) -> bool:
        """Make a restored copy's flags current under a new version. The kill switch is
        left as it was last set, not as the copy says: a kill released since the copy was
        made stays released, one pulled since stays pulled. Returns the kill switch."""
        killed = restored.last.killed
        with self._writing(actor) as connection:
            connection.execute(update(state_table).where(state_table.c.id == 1)
                               .values(killed=killed))
            self._audit(connection, actor, KILL_SWITCH,
                        f"restored copy of {version_time(restored.version)}",
                        f"adopted; kill switch {'ON' if killed else 'off'} as last set")
        return killed

    def replace_flags(self, flags: Mapping[str, Flag], *, actor: str, source: str,
                      killed: bool | None = None) -> list[str]:
        """Every feature set to `flags` (features not in it: local) as one change, each
        difference audited; the kill switch set to `killed` unless None. Returns the
        features that changed."""
        changed = []
        with self._writing(actor) as connection:
            for feature in sorted(self.features):
                old = self._current(connection, feature)
                new = flags.get(feature, Flag(feature))
                if (old or Flag(feature)) != new:
                    changed.append(feature)
                    self._put(connection, new, actor, exists=old is not None)
                    self._audit(connection, actor, feature, describe_flag(old or Flag(feature)),
                                describe_flag(new))
            if killed is not None:
                connection.execute(update(state_table).where(state_table.c.id == 1)
                                   .values(killed=killed))
            self._audit(connection, actor, KILL_SWITCH, "flags as they were",
                        f"flags restored from {source}")
        return changed

    def _set_killed(self, killed: bool, actor: str) -> None:
        with self._writing(actor) as connection:
            before = connection.execute(select(state_table.c.killed)
                                        .where(state_table.c.id == 1)).scalar_one()
            connection.execute(update(state_table).where(state_table.c.id == 1)
                               .values(killed=killed))
            self._audit(connection, actor, KILL_SWITCH, "killed" if before else "live",
                        "killed" if killed else "live")

    def _refuse_if_restored(self) -> None:
        found = self.restored()
        if found is not None:
            raise FlagStoreRestored(found.describe(self.where), reason=problems.RESTORED)

    def _current(self, connection: Connection, feature: str) -> Flag | None:
        row = connection.execute(select(flags_table)
                                 .where(flags_table.c.feature == feature)).one_or_none()
        if row is None:
            return None
        mode = row.mode if row.mode in MODES else "local"
        return Flag(feature=feature, mode=mode, percent=row.percent or 0.0)

    def _put(self, connection: Connection, flag: Flag, actor: str, *, exists: bool) -> None:
        values = {"mode": flag.mode, "percent": flag.percent, "updated_at": utcnow(),
                  "updated_by": actor}
        if exists:
            connection.execute(update(flags_table).where(flags_table.c.feature == flag.feature)
                               .values(**values))
        else:
            connection.execute(insert(flags_table).values(feature=flag.feature, **values))

    def _audit(self, connection: Connection, actor: str, feature: str, old: str,
               new: str) -> None:
        connection.execute(insert(audit_table).values(at=utcnow(), actor=actor, feature=feature,
                                                      old=old, new=new))

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def next_floor(self) -> int:
        """The least the next version may be: now, and past the newest version recorded
        beside a SQLite file (newer than the file itself after a restore by hand)."""
        last = self.last_write()
        return next_version(last.version if last else -1, self.now_ms())

    # --- the connection to the database --------------------------------------------------

    @contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise problems.from_database_error(exc, self.where) from exc

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A pooled connection whose failure discards it instead of pooling it again.

        A SQLite connection that once found the file unreadable ("file is not a database")
        keeps failing after the file is repaired, so a worker whose pool kept it would never
        read its flags again; a fresh connection reads the repaired file at once."""
        self.verify()
        with self._failures(), self.engine.connect() as connection:
            try:
                yield connection
            except DBAPIError:
                connection.invalidate()
                raise

    @contextmanager
    def _writing(self, actor: str) -> Iterator[Connection]:
        """One transaction that ends by moving the version forward (what every worker's
        cache watches for); then, for SQLite, the WAL folded into the file and the change
        recorded beside it (`last_write`)."""
        self.verify()
        with self._failures(), self.engine.begin() as connection:
            yield connection
            version, killed = self._bump(connection)
        if self.file is not None:
            self._fold_wal()
            last_write.write(self.file.path, version, killed, actor)

    def _bump(self, connection: Connection) -> tuple[int, bool]:
        """The version moves to now, or one past the newest version this store ever had:
        the current one, or the one recorded beside a SQLite file (newer when the file is a
        restored copy), so a change after a restore always reaches the workers."""
        floor, following = self.next_floor(), state_table.c.version + 1
        connection.execute(update(state_table).where(state_table.c.id == 1).values(
            version=case((following > floor, following), else_=floor)))
        row = connection.execute(select(state_table.c.version, state_table.c.killed)
                                 .where(state_table.c.id == 1)).one()
        return row.version, bool(row.killed)

    def _fold_wal(self) -> None:
        """Fold SQLite's WAL into the file after a change, so that the file alone holds every
        flag: a plain copy of it is a whole backup, and a copy restored over it is not
        overlaid with pages of the file it replaced. Best effort and bounded: a reader in
        the way leaves it to SQLite's own checkpoints."""
        if self.file is None:
            return
        with suppress(sqlite3.Error):
            connection = sqlite3.connect(self.file.path, timeout=CHECKPOINT_BUSY_TIMEOUT)
            try:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                connection.close()
