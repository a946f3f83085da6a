"""`turnout data copy|verify FEATURE`: move a feature's rows between the monolith's side and
its service's, and prove both hold the same rows. Generic over `DataSync` (shims/sync.py):
the rows are the tables the feature's `DataPath.tables` names.

Both commands work whether or not the processes are running (a side reached directly, by
the registry's `local_sync` and `service_sync`, needs none), and while traffic runs:

- `copy` is a snapshot plus a catch-up. It pages through every row of each row kind of the
  source, parents first, and applies each row as a versioned change (`shims/sync.py`):
  the target keeps whatever it holds that is newer, so a write made on either side during
  the copy is never overwritten by the snapshot's older state. Then it drains the source's
  outbox until every change made before the copy started has landed. It deletes only rows
  the source's outbox recorded as deleted (tombstones), never a row merely missing from
  the snapshot.
- `verify` compares per-row checksums, then looks again at each row that differs: a row
  whose change is still on its way (pending in an outbox) is "in flight" and is given a
  few seconds to land; what still differs with nothing pending is a real difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shims.mirror import Channel
from shims.sync import DataSync, RowChange, RowKey, TableDigest

BATCH = 200  # keys per transaction: bounded memory, and a refused row costs one batch retry
Progress = Callable[[str], None]


@dataclass
class CopyResult:
    snapshot_rows: int = 0
    caught_up: int = 0
    refused: list[tuple[RowChange, str]] = field(default_factory=list)
    backlog_left: int = 0


@dataclass(frozen=True)
class TableDifference:
    table: str
    monolith_count: int
    service_count: int
    only_in_monolith: list[str]
    only_in_service: list[str]
    differing: list[str]
    in_flight: list[str] = field(default_factory=list)  # still moving after the wait

    @property
    def clean(self) -> bool:
        return not (self.only_in_monolith or self.only_in_service or self.differing)


def copy(link: Channel, tables: Mapping[str, str], *, catch_up_seconds: float = 60.0,
         progress: Progress = lambda _: None) -> CopyResult:
    """Snapshot every row of the source onto the target, one row kind after the other in
    the order of `tables` (parents first: foreign keys hold at every step), then catch up."""
    started, result = time.time(), CopyResult()
    for entity in dict.fromkeys(tables.values()):
        after = 0
        while ids := link.source.keys(entity, after, BATCH):
            done = link.copy([RowKey(entity, i) for i in ids])
            result.snapshot_rows += len(ids)
            result.refused += done.refused
            after = ids[-1]
        progress(f"snapshot: {result.snapshot_rows} rows")
    result.caught_up, result.backlog_left = catch_up(link, since=started,
                                                     seconds=catch_up_seconds)
    result.refused = _still_refused(link, result.refused)
    return result


def _still_refused(link: Channel, refused: list[tuple[RowChange, str]]) -> list:
    """A row refused by the snapshot may have landed in the catch-up (a user re-registered
    under a new id, whose old row's tombstone had to land first): report only the rest."""
    if not refused:
        return []
    keys = [RowKey(change.entity, change.id) for change, _ in refused]
    landed = {(c.entity, c.id, c.version) for c in link.target.export(keys)}
    return [(change, message) for change, message in refused
            if (change.entity, change.id, change.version) not in landed]


def catch_up(link: Channel, *, since: float, seconds: float) -> tuple[int, int]:
    """Drain the source's outbox until nothing changed before `since` is still waiting;
    returns (changes settled, changes still waiting)."""
    deadline, settled = time.monotonic() + seconds, 0
    while True:
        settled += link.drain().settled
        backlog = link.backlog()
        if backlog.entries == 0 or time.time() - backlog.oldest_seconds > since:
            return settled, 0
        if time.monotonic() >= deadline:
            return settled, backlog.entries
        time.sleep(0.05)


def verify(monolith: DataSync, service: DataSync, tables: Mapping[str, str], *,
           settle_seconds: float = 5.0) -> list[TableDifference]:
    """Differences between the two sides in each of `tables` (table name -> the row kind
    its rows travel as), rows still in flight told apart."""
    first = [_compare(monolith.digest(table), service.digest(table)) for table in tables]
    deadline = time.monotonic() + settle_seconds
    return [_settle(monolith, service, difference, tables[difference.table], deadline)
            for difference in first]


def _compare(left: TableDigest, right: TableDigest) -> TableDifference:
    shared = left.checksums.keys() & right.checksums.keys()
    return TableDifference(
        table=left.table, monolith_count=left.count, service_count=right.count,
        only_in_monolith=sorted(left.checksums.keys() - right.checksums.keys()),
        only_in_service=sorted(right.checksums.keys() - left.checksums.keys()),
        differing=sorted(key for key in shared if left.checksums[key] != right.checksums[key]))


def _settle(monolith: DataSync, service: DataSync, difference: TableDifference, entity: str,
            deadline: float) -> TableDifference:
    """Look again at each differing row until both sides agree on it or the time is up.

    A row whose versions differ on the two sides has a change that has not landed yet:
    it is in flight. Rows that differ under the same version (or none) are real
    differences: no change on its way will repair them."""
    suspects = {*difference.only_in_monolith, *difference.only_in_service,
                *difference.differing}
    in_flight: set[str] = set()
    while suspects:
        keys = [RowKey(entity, int(i)) for i in sorted(suspects)]
        here, there = _states(monolith, keys, entity), _states(service, keys, entity)
        suspects = {i for i in suspects if here[int(i)].row != there[int(i)].row}
        in_flight = {i for i in suspects if here[int(i)].version != there[int(i)].version}
        if not in_flight or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    real = suspects - in_flight

    def keep(ids: list[str]) -> list[str]:
        return [i for i in ids if i in real]

    return TableDifference(
        table=difference.table, monolith_count=difference.monolith_count,
        service_count=difference.service_count,
        only_in_monolith=keep(difference.only_in_monolith),
        only_in_service=keep(difference.only_in_service), differing=keep(difference.differing),
        in_flight=sorted(in_flight))


def _states(side: DataSync, keys: list[RowKey], entity: str) -> dict[int, RowChange]:
    """Each key's state on one side; a key the side says nothing of is absent there."""
    found = {change.id: change for change in side.export(keys) if change.entity == entity}
    return {key.id: found.get(key.id, RowChange(entity, key.id, 0, None)) for key in keys}


def report(differences: list[TableDifference], shown: int = 10) -> list[str]:
    width = max([5, *(len(d.table) for d in differences)]) + 1
    lines = []
    for d in differences:
        state = "DIFFERENT" if not d.clean else "IN FLIGHT" if d.in_flight else "same"
        lines.append(f"{d.table:<{width}} monolith {d.monolith_count:>7}  service "
                     f"{d.service_count:>7}  {state}")
        for label, ids in (("only in monolith", d.only_in_monolith),
                           ("only in service", d.only_in_service), ("differ", d.differing),
                           ("in flight (pending in an outbox)", d.in_flight)):
            if ids:
                more = f" (+{len(ids) - shown} more)" if len(ids) > shown else ""
                lines.append(f"{' ' * (width + 1)}{label}: {', '.join(ids[:shown])}{more}")
    return lines
