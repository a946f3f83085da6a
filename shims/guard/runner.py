"""The guard itself: a greenlet in every monolith worker, of which the one holding the
lease `guard` in the evidence database works (`shims.mirror.Lease`, as the mirror
appliers elect theirs; the evidence database is the flag store's own on PostgreSQL and
a file beside a SQLite one, shims/evidence/store.py). So there is one guard per flag
store, across every worker and host, with no process of its own to deploy; if its worker
dies the lease lapses and another worker's guard takes over within `3 x tick` seconds.
Everything it decides on is shared (the evidence, the flags, the audit log), so a new
leader decides exactly as the old one would have.

Each tick, for every feature whose switch is on, in a stage where the service answers
users (canary, live, rampdown, remote), and not while the kill switch is on: if the feature
is armed (`rules.standing`) and its remote side breached a limit for the whole window
(`rules.breach`), the guard moves it back one stage with `StageMoves.rollback`, never
forced: the actor is `turnout-guard (<the breach, with its numbers>)`, the move is counted
(`turnout_guard_rollbacks_total{feature}`) and logged (`guard_rolled_back`). A move the
stage mover refuses (a drain that cannot finish while the service is down) is logged
(`guard_move_refused`), counted (`turnout_guard_refusals_total{feature}`) and tried again
at the next tick.

The window it judges ends `settle` seconds ago, at a bucket boundary, so every worker has
flushed the buckets it reads.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable

import gevent

from shims.evidence.reader import Evidence
from shims.flags.model import Flag, describe_flag
from shims.flags.store import SqlFlagStore
from shims.gates.moves import StageMoves
from shims.guard import rules
from shims.guard.switches import GuardSwitches
from shims.logs import event
from shims.metrics import TurnoutMetrics
from shims.mirror import Lease

log = logging.getLogger("turnout.guard")
LEASE_NAME = "guard"
ACTOR_LENGTH = 200  # the audit log's actor column
COMPLAIN_EVERY = 60.0  # seconds between two logged failures of a tick (a store down)


class Guard:
    def __init__(self, store: SqlFlagStore, evidence: Evidence, moves: StageMoves,
                 switches: GuardSwitches, lease: Lease, *, metrics: TurnoutMetrics | None,
                 tick: float, settle: float, clock: Callable[[], float] = time.time):
        self.store = store
        self.evidence = evidence
        self.moves = moves
        self.switches = switches
        self.lease = lease
        self.tick_seconds = tick
        self._settle = settle
        self._metrics = metrics
        self._clock = clock
        self._lease_ready = False
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None

    def _loop(self) -> None:
        complained_at = float("-inf")
        while True:
            gevent.sleep(self.tick_seconds)
            try:
                self.tick()
            except Exception as exc:  # the store down, say: the guard outlives it
                if time.monotonic() - complained_at >= COMPLAIN_EVERY:
                    complained_at = time.monotonic()
                    event(log, "guard_tick_failed", logging.WARNING, error=repr(exc)[:300],
                          meaning="the guard looks again at its next tick")

    def tick(self) -> list[str]:
        """One look at every feature; returns the features it moved back (tests)."""
        if not self._lead():
            return []
        snapshot = self.store.snapshot()
        if snapshot.killed:
            return []
        moved = []
        for feature, enabled in sorted(self.switches.enabled().items()):
            flag = snapshot.flag(feature)
            if enabled and flag.mode in rules.GUARDED_MODES and self._watch(feature, flag):
                moved.append(feature)
        return moved

    def _lead(self) -> bool:
        if not self._lease_ready:
            self.lease.create_schema()
            self._lease_ready = True
        leading = self.lease.hold()
        if self._metrics is not None:
            self._metrics.guard_leader.set(1 if leading else 0)
        return leading

    def _watch(self, feature: str, flag: Flag) -> bool:
        settings = self.moves.policy.guard_of(feature)
        now = self._clock()
        bucket = self.evidence.bucket_seconds
        until = self.evidence.bucket_of(now - self._settle)
        since = until - math.ceil(settings.window / bucket) * bucket
        standing = rules.standing(self.store.history(feature, 100), now=_utc(now),
                                  cooldown=settings.cooldown, window_start=_utc(since))
        if not standing.armed:
            return False
        span = self.evidence.span(feature, since, until)
        found = rules.breach(span.whole, span.buckets, settings)
        return found is not None and self._roll_back(feature, flag, found)

    def _roll_back(self, feature: str, flag: Flag, found: rules.Breach) -> bool:
        actor = f"{rules.GUARD_ACTOR} ({found.detail})"[:ACTOR_LENGTH]
        try:
            moved = self.moves.rollback(feature, actor=actor)
        except Exception as exc:  # refused (a drain that cannot finish), the store down...
            if self._metrics is not None:
                self._metrics.guard_refusals.labels(feature).inc()
            event(log, "guard_move_refused", logging.WARNING, feature=feature,
                  stage=describe_flag(flag), limit=found.limit, breach=found.detail,
                  error=getattr(exc, "message", repr(exc))[:300],
                  meaning="not forced: tried again at the next tick")
            return False
        if self._metrics is not None:
            self._metrics.guard_rollbacks.labels(feature).inc()
        event(log, "guard_rolled_back", logging.WARNING, feature=feature,
              old=describe_flag(flag), new=describe_flag(moved), limit=found.limit,
              breach=found.detail, actor=actor)
        return True


def _utc(moment: float) -> dt.datetime:
    """A time as the audit log keeps it: naive UTC."""
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).replace(tzinfo=None)
