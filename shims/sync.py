"""The data contract between the two sides of a feature that owns data.

One mechanism serves mirroring (`shims.mirror`), `turnout data copy` and `turnout data
verify`. Each side records what it changed in its outbox (`shims.outbox`); a change
travels as a `RowChange`: the row's current state (or `None` once it was deleted: a
tombstone) with the version of its latest change. The other side applies a change only
if it is newer than what it holds, so applying the same change twice, or an old one
after a new one, changes nothing. Ids are minted by the side that creates a row and
copied verbatim, so both sides always agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from shims.contract import describe, read, write
from shims.ids import INT64
from shims.limits import Limits
from shims.remote import RemoteClient

MAX_PAGE = 1000
Page = Annotated[int, Limits(minimum=1, maximum=MAX_PAGE)]
"""How many entries one call of `pending` or `keys` answers at most."""


@dataclass(frozen=True)
class RowKey:
    """`entity` names a row kind (e.g. "user", "run") or a scope (e.g. "user_runs": every
    run of one user)."""

    entity: str
    id: int


@dataclass(frozen=True)
class RowChange:
    """A row's state as of `version`; `row` is None when the row was deleted.

    Version 0 means the side never recorded a change of the row (it predates the outbox).
    """

    entity: str
    id: int
    version: int
    row: dict[str, Any] | None


@dataclass(frozen=True)
class PendingChange:
    """An outbox entry: the row `entity`/`id` changed, latest version `version`, and the
    change has not been mirrored yet."""

    entity: str
    id: INT64
    version: INT64


@dataclass(frozen=True)
class Applied:
    applied: int  # rows written or deleted
    skipped: int  # changes this side already held, or held a newer version of


@dataclass(frozen=True)
class Backlog:
    """Changes a side has not mirrored yet: how many rows, and the age of the oldest."""

    entries: int
    oldest_seconds: float


@dataclass(frozen=True)
class TableDigest:
    """A table's row count and per-row checksums, for `turnout data verify`."""

    table: str
    count: int
    checksums: dict[str, str]  # primary key (as text) -> checksum of the row


class DataSync(Protocol):
    @read
    def export(self, keys: list[RowKey]) -> list[RowChange]:
        """The current state and version of each key's rows, parents before children."""

    @write
    def apply(self, changes: list[RowChange]) -> Applied:
        """Apply each change that is newer than what this side holds, in one transaction."""

    @read
    def pending(self, limit: Page) -> list[PendingChange]:
        """This side's outbox: the oldest changes not yet mirrored, oldest first."""

    @write
    def settle(self, changes: list[PendingChange]) -> int:
        """Mark these changes mirrored, each only if its version is still the latest."""

    @read
    def backlog(self) -> Backlog:
        """How many changes wait to be mirrored, and since when."""

    @read
    def keys(self, entity: str, after: INT64, limit: Page) -> list[int]:
        """Ids of one row kind, ascending, after `after`: a snapshot's pages."""

    @read
    def digest(self, table: str) -> TableDigest:
        """Row count and per-row checksums of one table."""


class Mirror(Protocol):
    """Which rows a write touched, so the router can mirror them at once."""

    def keys_for(self, method: str, arguments: dict[str, Any], result: Any) -> list[RowKey]: ...


SYNC = describe(DataSync, "sync")


class RemoteDataSync(RemoteClient):
    """A feature's data sync on its extracted service."""

    spec = SYNC
