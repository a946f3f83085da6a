"""Each process's view of the flags: answered from memory, kept current by a cheap version check.

The hot path (`snapshot()`) does no I/O unless `refresh_interval` has passed
since the last check; then one process-wide check reads the version row, and
only when the version moved does it read the flags again. With the default
0.25 s, a change reaches every worker well within a second.

When the store cannot be read, or a row is corrupt, the cache keeps the last
good value for each feature (or `local` if it never had one), logs loudly and
never fails the request that asked. It never goes back to an older version: a
store older than what it serves (a copy restored from a backup) is reported, and
its flags are not taken up; the next change, which carries a newer version
(versions are times, shims/flags/store.py), is. `health` says what the last look
found (shims/flags/health.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from shims.flags.health import StoreHealth
from shims.flags.model import Flag, FlagSnapshot
from shims.logs import event
from shims.metrics import TurnoutMetrics

log = logging.getLogger("turnout.flags")


class FlagSource(Protocol):
    def version(self) -> int: ...
    def snapshot(self) -> FlagSnapshot: ...


class FlagCache:
    def __init__(self, store: FlagSource, *, refresh_interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic,
                 on_refresh: Callable[[FlagSnapshot], None] | None = None,
                 metrics: TurnoutMetrics | None = None):
        self._store = store
        self._interval = refresh_interval
        self._clock = clock
        self._on_refresh = on_refresh
        self._snapshot = FlagSnapshot(version=-1)  # everything local until the first read
        self._checked_at = float("-inf")
        self.health = StoreHealth(metrics)

    @property
    def healthy(self) -> bool:
        return self.health.readable

    def snapshot(self) -> FlagSnapshot:
        now = self._clock()
        if now - self._checked_at >= self._interval:
            # Claimed before the I/O: other greenlets keep using the current snapshot
            # instead of piling onto the store at the same moment.
            self._checked_at = now
            self._refresh(now)
        return self._snapshot

    def flag(self, feature: str) -> Flag:
        return self.snapshot().flag(feature)

    def refresh_now(self) -> FlagSnapshot:
        """Look at the store now, not at the next interval: the admin API, after a change
        it made, serves that change from this worker at once."""
        self._checked_at = float("-inf")
        return self.snapshot()

    def _refresh(self, now: float) -> None:
        before = self._snapshot.version
        try:
            version = self._store.version()
            fresh = self._store.snapshot() if version > before else None
        except Exception as exc:  # any store failure: keep serving the last good flags
            self.health.unreadable(exc, before, now)
            return
        found = fresh.version if fresh is not None else version
        # On PostgreSQL the reads yield to other greenlets: one of them (the admin API's
        # refresh_now) may have installed a newer version meanwhile. Ours is then stale,
        # not a store gone back.
        serving = self._snapshot.version
        if fresh is not None and found > serving:
            self._install(fresh)
            self.health.read(found)
        elif found < before:  # never back: keep what is served, say so
            self.health.backwards(found, serving, now)
        elif found == serving:
            self.health.read(found)

    def _install(self, fresh: FlagSnapshot) -> None:
        flags = dict(fresh.flags)
        for feature, problem in fresh.problems:
            kept = self._snapshot.flags.get(feature, Flag(feature))
            flags[feature] = kept
            event(log, "flag_row_corrupt", logging.ERROR, feature=feature, problem=problem,
                  serving=kept.mode)
        old = self._snapshot
        self._snapshot = FlagSnapshot(version=fresh.version, killed=fresh.killed, flags=flags,
                                      problems=fresh.problems)
        if old.version >= 0:
            for feature in sorted(set(flags) | set(old.flags)):
                before, after = old.flag(feature), self._snapshot.flag(feature)
                if before != after:
                    event(log, "flag_changed", feature=feature, old=before.mode,
                          new=after.mode, percent=after.percent, version=fresh.version)
            if old.killed != fresh.killed:
                event(log, "kill_switch", logging.WARNING, killed=fresh.killed,
                      version=fresh.version)
        if self._on_refresh is not None:
            self._on_refresh(self._snapshot)
