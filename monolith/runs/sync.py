"""LocalRunsSync: the `DataSync` contract over the users and runs tables.

The monolith runs it on its database and the data service on its own, so a
mirrored write, `turnout data copy runs` and `turnout data verify runs` all move
rows with the same code. Rows travel as their column values in wire form; a
user's row includes the password hash and Strava token, so the data service
serves this contract to authenticated services only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, Table, delete, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError

from monolith.models import Run, User
from shims.contracts import MAX_ID, possible_id
from shims.errors import Conflict, ValidationError
from shims.sync import RowKey, RowSet, TableDigest
from shims.wire import from_wire, to_wire

USERS: Table = User.__table__
RUNS: Table = Run.__table__
TABLES = {"users": USERS, "runs": RUNS}
ENTITIES = ("user", "run", "user_runs")


class LocalRunsSync:
    def __init__(self, engine: Engine):
        self._engine = engine

    def export(self, keys: list[RowKey]) -> list[RowSet]:
        with self._engine.connect() as connection:
            return [RowSet(key=key, rows=tuple(_rows(connection, key))) for key in keys]

    def apply(self, sets: list[RowSet]) -> int:
        """All sets in one transaction: a mirrored write lands whole or not at all."""
        for row_set in sets:
            _check_key(row_set.key)
        changed = 0
        try:
            with self._engine.begin() as connection:
                for row_set in sets:
                    changed += _apply(connection, row_set)
        except IntegrityError as exc:  # e.g. a run of a user this side lacks, a taken email
            raise Conflict(f"the rows do not fit this database: {exc.orig}", field="rows") from exc
        except DataError as exc:  # a value this database cannot hold (e.g. too long)
            raise ValidationError(f"the rows do not fit this database: {exc.orig}",
                                  field="rows") from exc
        return changed

    def digest(self, table: str) -> TableDigest:
        if table not in TABLES:
            raise ValidationError(f"unknown table {table!r}; tables: {', '.join(TABLES)}",
                                  field="table")
        with self._engine.connect() as connection:
            rows = connection.execute(select(TABLES[table])).mappings().all()
        checksums = {str(row["id"]): row_checksum(row) for row in rows}
        return TableDigest(table=table, count=len(rows), checksums=checksums)

    def all_keys(self) -> list[RowKey]:
        """Every user, then every runner's runs: the order a full copy must apply them in."""
        with self._engine.connect() as connection:
            ids = connection.execute(select(USERS.c.id).order_by(USERS.c.id)).scalars().all()
        return [RowKey("user", i) for i in ids] + [RowKey("user_runs", i) for i in ids]


def row_checksum(row: Any) -> str:
    canonical = json.dumps({key: to_wire(value) for key, value in dict(row).items()},
                           sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_key(key: RowKey) -> None:
    if key.entity not in ENTITIES:
        raise ValidationError(f"unknown entity {key.entity!r}; entities: {', '.join(ENTITIES)}",
                              field="entity")
    if not possible_id(key.id):  # no row can have it; the driver would overflow on it
        raise ValidationError(f"{key.entity} id {key.id} is out of range", field="id")


def _rows(connection: Connection, key: RowKey) -> Iterable[dict[str, Any]]:
    _check_key(key)
    table, column = _scope(key)
    for row in connection.execute(select(table).where(column == key.id)).mappings():
        yield {name: to_wire(value) for name, value in row.items()}


def _scope(key: RowKey):
    if key.entity == "user":
        return USERS, USERS.c.id
    if key.entity == "run":
        return RUNS, RUNS.c.id
    return RUNS, RUNS.c.user_id  # user_runs: every run of one user


def _apply(connection: Connection, row_set: RowSet) -> int:
    table, column = _scope(row_set.key)
    rows = [_decode(table, row) for row in row_set.rows]
    scope = "user_id" if row_set.key.entity == "user_runs" else "id"
    if any(row.get(scope) != row_set.key.id for row in rows):
        raise ValidationError(f"every row for {row_set.key.entity} {row_set.key.id} must have "
                              f"{scope} {row_set.key.id}", field="rows")
    keep = [row["id"] for row in rows]
    # Whatever the scope held that the source no longer has is gone on the source too.
    removed = connection.execute(delete(table).where(column == row_set.key.id,
                                                     table.c.id.not_in(keep))).rowcount
    for row in rows:
        exists = connection.execute(select(table.c.id).where(table.c.id == row["id"])).first()
        if exists:
            connection.execute(table.update().where(table.c.id == row["id"]).values(**row))
        else:
            connection.execute(table.insert().values(**row))
    return removed + len(rows)


def _decode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    unknown = set(row) - set(table.c.keys())
    if unknown or "id" not in row:
        raise ValidationError(f"row for {table.name} has unknown or missing columns: "
                              f"{sorted(unknown) or ['id']}", field="rows")
    return {name: _decode_value(table.c[name], value) for name, value in row.items()}


def _decode_value(column: Column, value: Any) -> Any:
    """A column's value from its wire form, refused (never a driver error) if it cannot fit."""
    where = f"{column.table.name}.{column.name}"
    if value is None:
        if not column.nullable:
            raise ValidationError(f"{where} must not be null", field="rows")
        return None
    try:
        decoded = from_wire(column.type.python_type, value, where)
    except ValidationError as exc:
        raise ValidationError(exc.message, field="rows") from None
    if isinstance(decoded, int) and not isinstance(decoded, bool) \
            and not -MAX_ID - 1 <= decoded <= MAX_ID:
        raise ValidationError(f"{where} is out of range", field="rows")
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
