"""The evidence read API (`EvidenceReader`): each feature's figures over a recent window,
merged from every worker's buckets in the shared table."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shims.evidence.figures import summarize
from shims.evidence.model import EvidenceSource, FeatureEvidence, Rows


class Evidence:
    def __init__(self, source: EvidenceSource, features: Iterable[str], *,
                 bucket_seconds: int, clock: Callable[[], float] = time.time):
        self.source = source
        self.names = tuple(sorted(features))
        self.bucket_seconds = int(bucket_seconds)
        self._clock = clock

    def bucket_of(self, moment: float) -> int:
        return int(moment // self.bucket_seconds) * self.bucket_seconds

    def feature(self, name: str, window_seconds: int) -> FeatureEvidence:
        return self.features(window_seconds, only=(name,))[name]

    def features(self, window_seconds: int,
                 only: Iterable[str] | None = None) -> dict[str, FeatureEvidence]:
        """Each feature's figures over the buckets from the one in progress `window_seconds`
        ago to now (the newest still filling)."""
        names = tuple(only) if only is not None else self.names
        now = self._clock()
        since, until = self.bucket_of(now - window_seconds), int(now) + 1
        rows = self.source.read(since, until, frozenset(names))
        return {name: summarize(name, rows, since=since, until=until,
                                window_seconds=window_seconds) for name in names}

    def span(self, name: str, since: int, until: int) -> Span:
        """One feature's figures over [since, until) (bucket starts), as a whole and bucket
        by bucket, a bucket with no row included (empty): the guard asks whether a breach
        held in every one of them."""
        rows = self.source.read(since, until, frozenset((name,)))
        whole = summarize(name, rows, since=since, until=until, window_seconds=until - since)
        return Span(whole, tuple(
            summarize(name, _of_bucket(rows, start), since=start,
                      until=start + self.bucket_seconds, window_seconds=self.bucket_seconds)
            for start in range(since, until, self.bucket_seconds)))


    def series(self, name: str, window_seconds: int,
               step_seconds: int) -> tuple[FeatureEvidence, ...]:
        """One feature's figures over the last `window_seconds`, step by step (oldest first;
        a step with no row included, empty), the last one holding now: a dashboard's
        per-minute charts. `step_seconds` is rounded up to whole buckets, so every bucket
        lands in exactly one step."""
        step = max(1, -(-int(step_seconds) // self.bucket_seconds)) * self.bucket_seconds
        until = int(self._clock() // step) * step + step  # the step holding now ends here
        since = until - max(1, -(-int(window_seconds) // step)) * step
        rows = self.source.read(since, until, frozenset((name,)))
        return tuple(summarize(name, _of_steps(rows, start, start + step), since=start,
                               until=start + step, window_seconds=step)
                     for start in range(since, until, step))


@dataclass(frozen=True)
class Span:
    whole: FeatureEvidence
    buckets: tuple[FeatureEvidence, ...]


def _of_steps(rows: Rows, start: int, end: int) -> Rows:
    return Rows(calls=tuple(row for row in rows.calls if start <= row.bucket < end),
                counts=tuple(row for row in rows.counts if start <= row.bucket < end))


def _of_bucket(rows: Rows, start: int) -> Rows:
    return Rows(calls=tuple(row for row in rows.calls if row.bucket == start),
                counts=tuple(row for row in rows.counts if row.bucket == start))
