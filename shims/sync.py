"""Copying rows between the two sides of a feature that owns data.

One mechanism serves three jobs: mirroring a write to the other side during the
dual-write stages, `turnout data copy`, and `turnout data verify`. A write
names the rows it touched as `RowKey`s; the authoritative side exports the
current state of those rows (`RowSet`, empty when they were deleted) and the
other side applies it verbatim, ids included. Both sides therefore always agree
on ids: the side that creates a row mints its id, the other side copies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from shims.contract import describe, read, write
from shims.remote import RemoteClient


@dataclass(frozen=True)
class RowKey:
    """`entity` names a row kind (e.g. "user", "run") or a scope (e.g. "user_runs")."""

    entity: str
    id: int


@dataclass(frozen=True)
class RowSet:
    """Every row currently in the key's scope; an empty set means "none any more"."""

    key: RowKey
    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class TableDigest:
    """A table's row count and per-row checksums, for `turnout data verify`."""

    table: str
    count: int
    checksums: dict[str, str]  # primary key (as text) -> checksum of the row


class DataSync(Protocol):
    @read
    def export(self, keys: list[RowKey]) -> list[RowSet]:
        """The current rows for each key."""

    @write
    def apply(self, sets: list[RowSet]) -> int:
        """Make each key's scope hold exactly the given rows; returns rows written or removed."""

    @read
    def digest(self, table: str) -> TableDigest:
        """Row count and per-row checksums of one table."""


class Mirror(Protocol):
    """Which rows a write touched, so the router can copy them to the other side."""

    def keys_for(self, method: str, arguments: dict[str, Any], result: Any) -> list[RowKey]: ...


SYNC = describe(DataSync, "sync")


class RemoteDataSync(RemoteClient):
    """A feature's data sync on its extracted service."""

    spec = SYNC
