"""Mirroring a feature's data from one side to the other, from the outbox.

A `Channel` moves changes from a source side to a target side (both `DataSync`s,
local or remote): it exports the current state and version of some rows from the
source, applies them on the target (which keeps only what is newer than what it holds)
and then settles them in the source's outbox (compare-and-clear: a row changed again
meanwhile stays pending). Two paths use it:

- `push(keys)`: the router mirrors the rows a write touched right after the write, so
  the other side has them when the caller gets its answer (read-after-write holds when
  a stage move sends the next read to the other side).
- `drain()`: the applier (`MirrorApplier`) takes what is still pending, oldest first:
  whatever a push could not deliver (the other side down, the breaker open, the
  process killed between the write and its push) stays in the outbox until it lands.

Which channels run depends on the stage: the monolith's changes go to the service in
every stage but `local`; the service's come home in every stage but `remote`
(`active_targets`), so going back from `remote` brings the service's writes home.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import gevent
from sqlalchemy import Column, Float, MetaData, String, Table, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from shims import telemetry
from shims.errors import ContractError
from shims.logs import event
from shims.sql import create_tables
from shims.sync import Backlog, DataSync, PendingChange, RowChange, RowKey

log = logging.getLogger("turnout.mirror")
LOCAL, REMOTE = "local", "remote"
BATCH = 200


def active_targets(mode: str, killed: bool = False) -> tuple[str, ...]:
    """The sides that must receive the other's changes in this stage. With the kill switch
    on, every feature answers locally: the service's writes must come home, and the
    service is kept current for the moment the switch is released."""
    if killed:
        return (REMOTE, LOCAL)
    targets = []
    if mode != "local":
        targets.append(REMOTE)  # the service holds the data from dualwrite on
    if mode != "remote":
        targets.append(LOCAL)  # the monolith holds it in every stage but remote
    return tuple(targets)


@dataclass
class DrainResult:
    settled: int = 0
    refused: list[tuple[RowChange, str]] = field(default_factory=list)


class Channel:
    """One direction of one feature's mirror: `source` -> `target`."""

    MAX_UNSETTLED = 10_000

    def __init__(self, feature: str, target_name: str, source: DataSync, target: DataSync):
        self.feature = feature
        self.target_name = target_name
        self.source = source
        self.target = target
        self._delivered: list[PendingChange] = []

    def push(self, keys: list[RowKey]) -> None:
        """Mirror these rows now; raises if the target could not take them (they stay
        pending in the source's outbox for the applier).

        What was delivered is settled in batches (`flush_settled`), not one transaction per
        write: on SQLite every write transaction queues for the one writer's lock, and an
        unsettled change costs at most a resend the target skips."""
        changes = self.source.export(keys)
        self.target.apply(changes)
        self._delivered.extend(_entries(changes))
        del self._delivered[:-self.MAX_UNSETTLED]

    def flush_settled(self) -> int:
        """Settle what `push` delivered; kept for the next try if the source is down."""
        if not self._delivered:
            return 0
        entries, self._delivered = self._delivered, []
        try:
            return self.source.settle(entries)
        except Exception:
            self._delivered[:0] = entries
            del self._delivered[:-self.MAX_UNSETTLED]
            raise

    def copy(self, keys: list[RowKey]) -> DrainResult:
        """Like `push`, but a row the target refuses is reported and the others go on
        (`turnout data copy`)."""
        result = DrainResult()
        delivered = self._deliver(self.source.export(keys), result)
        result.settled = self.source.settle(_entries(delivered))
        return result

    def drain(self, *, batches: int = 10, limit: int = BATCH) -> DrainResult:
        """Mirror what is pending, oldest first, up to `batches` batches. A change the target
        refuses (a contract error) is reported and stays pending; the rest go on. A
        transport error stops the drain (raised): the target is down."""
        result = DrainResult()
        for _ in range(batches):
            pending = self.source.pending(limit)
            if not pending:
                break
            changes = self.source.export([RowKey(p.entity, p.id) for p in pending])
            delivered = self._deliver(changes, result)
            result.settled += self.source.settle(_entries(delivered))
            if len(pending) < limit or not delivered:
                break
        return result

    def backlog(self) -> Backlog:
        return self.source.backlog()

    def _deliver(self, changes: list[RowChange], result: DrainResult) -> list[RowChange]:
        try:
            self.target.apply(changes)
            return changes
        except ContractError:
            pass  # one change the target refuses must not hold back the others
        delivered = []
        for change in changes:
            try:
                self.target.apply([change])
                delivered.append(change)
            except ContractError as error:
                result.refused.append((change, error.message))
        return delivered


def mirror_channels(feature: str, local: DataSync, remote: DataSync) -> dict[str, Channel]:
    """Both directions of a feature's mirror, by the side they deliver to."""
    return {REMOTE: Channel(feature, REMOTE, local, remote),
            LOCAL: Channel(feature, LOCAL, remote, local)}


def _entries(changes: Iterable[RowChange]) -> list[PendingChange]:
    return [PendingChange(c.entity, c.id, c.version) for c in changes if c.version]


# --- one applier per feature: a lease -----------------------------------------------------

lease_metadata = MetaData()
lease_table = Table(
    "turnout_leases", lease_metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
)


class Lease:
    """A named lease in a shared database: one holder at a time, taken over when it lapses
    (its holder was killed). Correctness never depends on it (mirrored changes are
    idempotent); it only keeps every worker from doing the same work."""

    def __init__(self, engine: Engine, name: str, *, ttl: float = 3.0,
                 holder: str | None = None, clock: Callable[[], float] = time.time):
        self._engine = engine
        self.name = name
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._ttl = ttl
        self._clock = clock
        # Writes to the shared database are kept rare (SQLite has one writer at a time):
        # the holder renews at half its lease, the others look again when it would lapse.
        self._held_until = 0.0
        self._look_again_at = 0.0

    def create_schema(self) -> None:
        create_tables(lease_metadata, self._engine)

    def hold(self) -> bool:
        """Take or renew the lease; True while this holder has it."""
        now = self._clock()
        if now < self._held_until - self._ttl / 2:
            return True
        if now < self._look_again_at:
            return False
        if self._take(now):
            self._held_until = now + self._ttl
            return True
        self._held_until = 0.0
        return False

    def _take(self, now: float) -> bool:
        table = lease_table
        with self._engine.begin() as connection:
            taken = connection.execute(update(table).where(
                table.c.name == self.name,
                or_(table.c.holder == self.holder, table.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self._ttl)).rowcount
            if taken:
                return True
            expires_at = connection.execute(select(table.c.expires_at).where(
                table.c.name == self.name)).scalar()
            if expires_at is not None:
                self._look_again_at = expires_at  # another holder has it until then
                return False
            try:
                with connection.begin_nested():
                    connection.execute(insert(table).values(name=self.name, holder=self.holder,
                                                            expires_at=now + self._ttl))
                return True
            except IntegrityError:
                self._look_again_at = now + self._ttl / 2  # another holder was quicker
                return False


# --- the applier -------------------------------------------------------------------------

class MirrorApplier:
    """Drains a feature's pending changes in the directions its stage needs, for ever.

    Every monolith worker runs one per feature; the lease lets one work at a time. It looks
    every `interval` while there is work, every `idle_interval` when there was none. A
    failure backs off (up to `max_backoff`) and is logged at most every `complain_every`
    seconds; backlog and lag are published as gauges (`report`)."""

    def __init__(self, feature: str, channels: dict[str, Channel],
                 stage: Callable[[], tuple[str, bool]],
                 lease: Lease, *, report: Callable[[str, str, Backlog], None] | None = None,
                 interval: float = 0.1, idle_interval: float = 0.5, max_backoff: float = 5.0,
                 complain_every: float = 30.0):
        self.feature = feature
        self._channels = channels
        self._stage = stage  # (the feature's mode, the kill switch)
        self._lease = lease
        self._report = report
        self._interval = interval
        self._idle_interval = idle_interval
        self._max_backoff = max_backoff
        self._complain_every = complain_every
        self._backoff: dict[str, float] = {}
        self._next_try: dict[str, float] = {}
        self._complained: dict[str, float] = {}
        self._greenlets: list[gevent.Greenlet] = []

    def start(self) -> None:
        """Two loops: settling this worker's pushes, and (with the lease) draining. Apart,
        so a slow drain (the other side struggling) never delays the settles."""
        if not self._greenlets or any(g.dead for g in self._greenlets):
            self.stop()
            self._greenlets = [gevent.spawn(self._loop, self.settle),
                               gevent.spawn(self._loop, self.drain_step)]

    def stop(self) -> None:
        gevent.killall(self._greenlets, block=True, timeout=5)
        self._greenlets = []

    def _loop(self, work: Callable[[], None]) -> None:
        while True:
            try:
                with telemetry.unsampled():  # a round's calls share a trace id, unrecorded
                    work()
            except Exception as exc:  # the loop must outlive any one failure
                self._complain("loop", exc)
            gevent.sleep(self._interval)

    def step(self) -> None:
        """One round of both loops (tests drive the applier with it)."""
        self.settle()
        self.drain_step()

    def settle(self) -> None:
        """Every worker settles what its own router pushed."""
        for target, channel in self._channels.items():
            try:
                channel.flush_settled()
            except Exception as exc:
                self._complain(target, exc)

    def drain_step(self) -> None:
        if not self._hold_lease():
            return
        for target in active_targets(*self._stage()):
            if time.monotonic() >= self._next_try.get(target, 0.0):
                self._drain(target)

    def _hold_lease(self) -> bool:
        try:
            return self._lease.hold()
        except SQLAlchemyError as exc:
            self._complain("lease", exc)
            return True  # no lease to be had: drain anyway, mirroring is idempotent

    def _drain(self, target: str) -> None:
        channel = self._channels[target]
        try:
            result = channel.drain()
            backlog = channel.backlog()
        except Exception as exc:
            delay = min(self._max_backoff, max(0.25, self._backoff.get(target, 0.0) * 2))
            self._backoff[target] = delay
            self._next_try[target] = time.monotonic() + delay
            self._complain(target, exc)
            return
        self._backoff.pop(target, None)
        if not result.settled:  # nothing moved: look again a little later (the router pushes
            # each write at once; the applier only catches what a push could not deliver)
            self._next_try[target] = time.monotonic() + self._idle_interval
        for change, message in result.refused:
            event(log, "mirror_change_refused", logging.ERROR, feature=self.feature,
                  target=target, entity=change.entity, id=change.id, version=change.version,
                  error=message, meaning="stays in the outbox until the target accepts it")
        if self._report is not None:
            self._report(self.feature, target, backlog)

    def _complain(self, target: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._complained.get(target, float("-inf")) >= self._complain_every:
            self._complained[target] = now
            event(log, "mirror_stalled", logging.WARNING, feature=self.feature, target=target,
                  error=repr(exc), meaning="changes wait in the outbox; retrying with backoff")
