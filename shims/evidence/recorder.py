"""One worker's evidence, in memory, per time bucket, until the next flush.

The router, the shadow runners, the mirror applier and the flusher (breaker states) report
here; nothing here does I/O, so reporting costs a request a dict update. `take()` hands
the flusher everything counted since the last take, as rows to add to the shared table;
`give_back()` keeps rows a failed flush could not write, for the next one. Buckets older
than the table keeps (`keep_seconds`) are dropped as a new bucket starts, so neither an
unreachable store nor a process that never flushes (one whose server did not start the
flusher) grows the worker's memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shims.evidence import histogram
from shims.evidence.model import BREAKER_VALUES, ERROR_OUTCOMES, CallRow, CountRow, Rows

CallKey = tuple[int, str, str, str]  # bucket, feature, method, side
CountKey = tuple[int, str, str, str]  # bucket, feature, method, name


@dataclass
class _CallTally:
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    histogram: list[int] = field(default_factory=histogram.empty)


@dataclass
class _CountTally:
    count: int = 0
    peak: float = 0.0


class EvidenceRecorder:
    def __init__(self, bucket_seconds: int = 10, *, keep_seconds: int = 3600,
                 clock: Callable[[], float] = time.time):
        if bucket_seconds < 1:
            raise ValueError("bucket_seconds must be at least 1")
        self.bucket_seconds = int(bucket_seconds)
        self._keep = keep_seconds
        self._clock = clock
        self._newest = 0  # the newest bucket counted in
        self._lock = threading.Lock()  # only matters under real threads, as in the breaker
        self._calls: dict[CallKey, _CallTally] = {}
        self._counts: dict[CountKey, _CountTally] = {}

    def bucket(self, at: float | None = None) -> int:
        moment = self._clock() if at is None else at
        return int(moment // self.bucket_seconds) * self.bucket_seconds

    def _now(self) -> int:
        """The current bucket; when a new one starts, those too old to keep are dropped.
        Called with the lock held."""
        current = self.bucket()
        if current > self._newest:
            self._newest = current
            oldest = current - self._keep
            for tallies in (self._calls, self._counts):
                for key in [key for key in tallies if key[0] < oldest]:
                    del tallies[key]
        return current

    # --- what is reported ------------------------------------------------------------

    def call(self, feature: str, method: str, side: str, outcome: str, seconds: float) -> None:
        with self._lock:
            tally = self._calls.setdefault((self._now(), feature, method, side), _CallTally())
            tally.calls += 1
            tally.errors += outcome in ERROR_OUTCOMES
            tally.seconds += seconds
            tally.histogram[histogram.slot(seconds)] += 1

    def fallback(self, feature: str, method: str, reason: str) -> None:
        self.count(feature, f"fallback.{reason}", method=method)

    def mirror_write(self, feature: str, target: str, outcome: str) -> None:
        self.count(feature, f"mirror.{target}.{outcome}")

    def shadow(self, outcome) -> None:
        """A `shims.shadow.ShadowListener`: every shadow's result, rechecks included."""
        self.count(outcome.feature, f"shadow.{outcome.result}", method=outcome.method)

    def breaker(self, feature: str, state: str) -> None:
        """One worker's breaker as the flusher samples it: its worst state in the bucket,
        and how many samples were not closed."""
        value = BREAKER_VALUES.get(state, 0)
        self.gauge(feature, "breaker.worst", value)
        self.count(feature, "breaker.samples")
        if value:
            self.count(feature, "breaker.not_closed")

    def mirror_backlog(self, feature: str, target: str, entries: int, lag: float) -> None:
        self.gauge(feature, f"backlog.{target}", entries)
        self.gauge(feature, f"lag.{target}", lag)

    def count(self, feature: str, name: str, *, method: str = "", by: int = 1) -> None:
        with self._lock:
            self._counts.setdefault((self._now(), feature, method, name),
                                    _CountTally()).count += by

    def gauge(self, feature: str, name: str, value: float) -> None:
        with self._lock:
            tally = self._counts.setdefault((self._now(), feature, "", name), _CountTally())
            tally.peak = max(tally.peak, float(value))

    # --- what the flusher takes ------------------------------------------------------

    def take(self) -> Rows:
        with self._lock:
            calls, self._calls = self._calls, {}
            counts, self._counts = self._counts, {}
        return Rows(
            calls=tuple(CallRow(bucket, feature, method, side, t.calls, t.errors, t.seconds,
                                tuple(t.histogram))
                        for (bucket, feature, method, side), t in calls.items()),
            counts=tuple(CountRow(bucket, feature, method, name, t.count, t.peak)
                         for (bucket, feature, method, name), t in counts.items()))

    def give_back(self, rows: Rows, *, keep_from: int) -> None:
        """Rows a flush could not write, counted again for the next one (those of buckets
        before `keep_from` are dropped: the table would prune them anyway)."""
        with self._lock:
            for row in _recent(rows.calls, keep_from):
                tally = self._calls.setdefault((row.bucket, row.feature, row.method, row.side),
                                               _CallTally())
                tally.calls += row.calls
                tally.errors += row.errors
                tally.seconds += row.seconds
                histogram.merge(tally.histogram, row.histogram)
            for count_row in _recent(rows.counts, keep_from):
                tally_ = self._counts.setdefault(
                    (count_row.bucket, count_row.feature, count_row.method, count_row.name),
                    _CountTally())
                tally_.count += count_row.count
                tally_.peak = max(tally_.peak, count_row.peak)


def _recent(rows: Iterable, keep_from: int) -> list:
    return [row for row in rows if row.bucket >= keep_from]
