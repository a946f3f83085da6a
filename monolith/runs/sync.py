"""LocalRunsSync: the `DataSync` contract over the users and runs tables.

The monolith runs it on its database and the data service on its own, so a
mirrored write, `turnout data copy runs` and `turnout data verify runs` all move
rows with the same code. Rows travel as their column values in wire form; a
user's row includes the password hash and Strava token, so the data service
serves this contract to authenticated services only.

Every change of a user or a run made through the feature's sessions is recorded in
the outbox (`RUNS_OUTBOX.track`, `shims/outbox.py`); `apply` writes a change only if
it is newer than the version this side holds, and records that version without
marking it pending, so a mirrored change never travels back.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Column, Table, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError

from monolith.models import Run, User
from shims import outbox
from contracts import MAX_ID, possible_id
from shims.errors import Conflict, NotFound, ValidationError
from shims.sync import (MAX_PAGE, Applied, Backlog, PendingChange, RowChange, RowKey,
                        TableDigest)
from shims.wire import from_wire, to_wire

USERS: Table = User.__table__
RUNS: Table = Run.__table__
TABLES = {"users": USERS, "runs": RUNS}
ENTITY_TABLES = {"user": USERS, "run": RUNS}  # the row kinds a change can carry
ENTITIES = (*ENTITY_TABLES, "user_runs")  # and the scope an export can be asked for
RUNS_OUTBOX = outbox.OutboxRecorder({USERS: "user", RUNS: "run"})


class LocalRunsSync:
    def __init__(self, engine: Engine):
        self._engine = engine

    def export(self, keys: list[RowKey]) -> list[RowChange]:
        for key in keys:
            _check_key(key)
        changes: dict[tuple[str, int], RowChange] = {}
        with self._engine.connect() as connection:
            for key in keys:
                for change in _changes(connection, key):
                    changes.setdefault((change.entity, change.id), change)
        return list(changes.values())

    def apply(self, changes: list[RowChange]) -> Applied:
        """All changes in one transaction: a batch lands whole or not at all."""
        for change in changes:
            _check_key(RowKey(change.entity, change.id), kinds=ENTITY_TABLES)
        applied = 0
        try:
            with self._engine.begin() as connection:
                for change in changes:
                    applied += _apply(connection, change)
        except IntegrityError as exc:  # e.g. a run of a user this side lacks, a taken email
            raise Conflict(f"the rows do not fit this database: {exc.orig}", field="rows") from exc
        except DataError as exc:  # a value this database cannot hold (e.g. too long)
            raise Conflict(f"the rows do not fit this database: {exc.orig}",
                           field="rows") from exc
        return Applied(applied=applied, skipped=len(changes) - applied)

    def pending(self, limit: int) -> list[PendingChange]:
        with self._engine.connect() as connection:
            return outbox.pending(connection, _page(limit))

    def settle(self, changes: list[PendingChange]) -> int:
        with self._engine.begin() as connection:
            return outbox.settle(connection, changes)

    def backlog(self) -> Backlog:
        with self._engine.connect() as connection:
            return outbox.backlog(connection)

    def keys(self, entity: str, after: int, limit: int) -> list[int]:
        table = ENTITY_TABLES.get(entity)
        if table is None:
            raise NotFound(f"no entity {entity!r} here; entities: {', '.join(ENTITY_TABLES)}",
                           field="entity")
        with self._engine.connect() as connection:
            return list(connection.execute(select(table.c.id).where(table.c.id > after)
                                           .order_by(table.c.id).limit(_page(limit))).scalars())

    def digest(self, table: str) -> TableDigest:
        if table not in TABLES:
            raise NotFound(f"no table {table!r} here; tables: {', '.join(TABLES)}",
                           field="table")
        with self._engine.connect() as connection:
            rows = connection.execute(select(TABLES[table])).mappings().all()
        checksums = {str(row["id"]): row_checksum(row) for row in rows}
        return TableDigest(table=table, count=len(rows), checksums=checksums)


def row_checksum(row: Any) -> str:
    canonical = json.dumps({key: to_wire(value) for key, value in dict(row).items()},
                           sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be from 1 to {MAX_PAGE}", field="limit")
    return limit


def _check_key(key: RowKey, kinds: Any = ENTITIES) -> None:
    """A well-formed key that names no entity, or an id no row can have, is NotFound: the
    contract types them as any string and any int64 (which entities a feature has is the
    feature's), so they are absent things, not malformed input."""
    if key.entity not in kinds:
        raise NotFound(f"no entity {key.entity!r} here; entities: {', '.join(kinds)}",
                       field="entity")
    if not possible_id(key.id):  # no row can have it; the driver would overflow on it
        raise NotFound(f"no {key.entity} can have id {key.id}", field="id")


# --- export ------------------------------------------------------------------------------

def _changes(connection: Connection, key: RowKey) -> list[RowChange]:
    """The key's rows as changes, each run preceded by its user (parents first), so the
    other side can apply a run even if it never received its user."""
    if key.entity == "user":
        return [_change(connection, "user", key.id)]
    if key.entity == "run":
        run = _change(connection, "run", key.id)
        return [_change(connection, "user", run.row["user_id"]), run] if run.row else [run]
    ids = connection.execute(select(RUNS.c.id).where(RUNS.c.user_id == key.id)
                             .order_by(RUNS.c.id)).scalars().all()
    return [_change(connection, "user", key.id)] + [_change(connection, "run", i) for i in ids]


def _change(connection: Connection, entity: str, row_id: int) -> RowChange:
    # The version is read before the row: if a write lands in between, the row is newer
    # than its version says, the outbox entry keeps the newer version pending, and the
    # next round sends it again. Read the other way round, an old row could travel under
    # the new version and be settled, and the other side would keep the old row for good.
    version = outbox.versions(connection, entity, [row_id]).get(row_id, 0)
    table = ENTITY_TABLES[entity]
    found = connection.execute(select(table).where(table.c.id == row_id)).mappings().first()
    row = {name: to_wire(value) for name, value in found.items()} if found else None
    return RowChange(entity=entity, id=row_id, version=version, row=row)


# --- apply -------------------------------------------------------------------------------

def _apply(connection: Connection, change: RowChange, *, again: bool = False) -> int:
    """1 if the change was written, 0 if this side already held it or something newer."""
    table = ENTITY_TABLES[change.entity]
    held = outbox.versions(connection, change.entity, [change.id]).get(change.id)
    current = connection.execute(select(table).where(table.c.id == change.id)).mappings().first()
    if change.row is None:
        if change.version == 0 or (held or 0) >= change.version:
            return 0  # an unrecorded absence is no delete; an older delete changes nothing
        if current is not None:
            connection.execute(table.delete().where(table.c.id == change.id))
        outbox.store_version(connection, change.entity, change.id, change.version)
        return 1
    row = _decode(table, change.row)
    if row["id"] != change.id:
        raise Conflict(f"the row of {change.entity} {change.id} has id {row['id']}",
                       field="rows")
    if not _newer(change.version, held, current, row):
        return 0
    if current is None:
        try:
            with connection.begin_nested():
                connection.execute(table.insert().values(**row))
        except IntegrityError:
            # A push and the applier delivering the same new row at once: the other one
            # inserted it between our look and our insert. Look again (once): it is now an
            # equal or older version, or a real conflict (a missing user, a taken email).
            if again:
                raise
            return _apply(connection, change, again=True)
    else:
        connection.execute(table.update().where(table.c.id == change.id).values(**row))
    if change.version:
        outbox.store_version(connection, change.entity, change.id, change.version)
    return 1


def _newer(version: int, held: int | None, current: Any, row: dict[str, Any]) -> bool:
    """Does the change carry something this side lacks? Newer versions win. Under the same
    version the rows agree, unless someone edited one behind the outbox's back: then the
    side the change comes from (the copy's source, the writer) wins."""
    held_version = held or 0
    if version != held_version:
        return version > held_version
    if current is None:
        return held is None  # never here; under a held version, deleted here at that version
    return dict(current) != row


def _decode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The contract types a row as any mapping (its columns are the feature's): a row that
    does not fit this side's table conflicts with this side's schema (409), like a row a
    constraint refuses, and nothing of the batch is applied."""
    unknown = set(row) - set(table.c.keys())
    if unknown or "id" not in row:
        raise Conflict(f"row for {table.name} has unknown or missing columns: "
                              f"{sorted(unknown) or ['id']}", field="rows")
    return {name: _decode_value(table.c[name], value) for name, value in row.items()}


def _decode_value(column: Column, value: Any) -> Any:
    """A column's value from its wire form, refused (never a driver error) if it cannot fit."""
    where = f"{column.table.name}.{column.name}"
    if value is None:
        if not column.nullable:
            raise Conflict(f"{where} must not be null", field="rows")
        return None
    try:
        decoded = from_wire(column.type.python_type, value, where)
    except ValidationError as exc:
        raise Conflict(exc.message, field="rows") from None
    if isinstance(decoded, int) and not isinstance(decoded, bool) \
            and not -MAX_ID - 1 <= decoded <= MAX_ID:
        raise Conflict(f"{where} is out of range", field="rows")
    return decoded


class RunsMirror:
    """The rows each write of the Accounts and Runs contracts touches."""

    def keys_for(self, method: str, arguments: dict[str, Any], result: Any) -> list[RowKey]:
        if method == "accounts.sign_up":
            return [RowKey("user", result.id)]
        if method.startswith("accounts."):
            return [RowKey("user", arguments["user_id"])]
        if method == "runs.add_run":
            return [RowKey("run", result.id)]
        if method in ("runs.update_run", "runs.delete_run"):
            return [RowKey("run", arguments["run_id"])]
        if method == "runs.import_runs":
            return [RowKey("user_runs", arguments["user_id"])]
        raise ValueError(f"no mirror rule for write {method}; add one to RunsMirror")
