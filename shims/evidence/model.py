"""The evidence's contracts: what the router reports (`EvidenceSink`), the rows the
workers add to the shared table, and the figures read back over a window (`FeatureEvidence`),
which the gates, the guard, the admin API and a dashboard use.

Every figure is over one window (the buckets that started within it) and across every
worker of every monolith process that shares the flag store. A rate or a quantile with
nothing to compute it from is None, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

LOCAL, REMOTE = "local", "remote"
# Call outcomes that are failures of the side called. A contract error (a 404, a refused
# value) is an answer: the side works.
ERROR_OUTCOMES = frozenset({"transport_error", "error"})
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
BREAKER_NAMES = {value: name for name, value in BREAKER_VALUES.items()}


class EvidenceSink(Protocol):
    """What a router reports, call by call (no I/O: kept in memory until the next flush)."""

    def call(self, feature: str, method: str, side: str, outcome: str,
             seconds: float) -> None: ...

    def fallback(self, feature: str, method: str, reason: str) -> None: ...

    def mirror_write(self, feature: str, target: str, outcome: str) -> None: ...


class NoEvidence:
    """A sink that keeps nothing: routers built without evidence (tests, tools)."""

    def call(self, feature: str, method: str, side: str, outcome: str,
             seconds: float) -> None:
        return None

    def fallback(self, feature: str, method: str, reason: str) -> None:
        return None

    def mirror_write(self, feature: str, target: str, outcome: str) -> None:
        return None


# --- rows: one time bucket of one worker's counts, added to the shared table -----------

@dataclass(frozen=True)
class CallRow:
    """Calls of one method on one side that started in one bucket."""

    bucket: int  # the bucket's start, epoch seconds
    feature: str
    method: str
    side: str
    calls: int
    errors: int
    seconds: float  # their total duration
    histogram: tuple[int, ...]  # shims.evidence.histogram.BOUNDS_MS


@dataclass(frozen=True)
class CountRow:
    """One named count in one bucket: `count` adds up across workers, `peak` keeps the
    highest value reported (a gauge: a backlog, a breaker's worst state)."""

    bucket: int
    feature: str
    method: str  # "" for what belongs to the feature, not one method
    name: str  # e.g. shadow.match, fallback.breaker_open, mirror.remote.deferred
    count: int = 0
    peak: float = 0.0


@dataclass(frozen=True)
class Rows:
    calls: tuple[CallRow, ...] = ()
    counts: tuple[CountRow, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.calls or self.counts)


class EvidenceSource(Protocol):
    """Where the rows are kept (`shims.evidence.store.SqlEvidenceStore`)."""

    def read(self, since: int, until: int, features: frozenset[str] | None = None) -> Rows: ...


# --- figures: read back over a window ---------------------------------------------------

@dataclass(frozen=True)
class SideFigures:
    side: str
    calls: int = 0
    errors: int = 0
    error_rate: float | None = None  # errors / calls
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None


@dataclass(frozen=True)
class MethodFigures:
    method: str
    local: SideFigures
    remote: SideFigures


@dataclass(frozen=True)
class ShadowFigures:
    """Shadow reads: `compared` answers (matches and mismatches). A mismatch is checked
    again a moment later (TURNOUT_SHADOW_RECHECK_SECONDS): if both sides then agree it was
    `transient` (a read that raced a write's mirror), else `persistent`; a mismatch that
    could not be checked again counts as persistent. `mismatch_rate` is persistent /
    compared: what the gates judge."""

    compared: int = 0
    matches: int = 0
    mismatches: int = 0
    transient: int = 0
    persistent: int = 0
    errors: int = 0  # the shadow side failed (shadow_error)
    timeouts: int = 0
    skipped: int = 0  # not run: too many in flight, or the breaker open
    match_rate: float | None = None
    mismatch_rate: float | None = None


@dataclass(frozen=True)
class BreakerFigures:
    """`worst`: the worst state any worker reported in the window; `now`: in the newest
    bucket with a report; `open_share`: the share of reports that were not closed."""

    worst: str = "closed"
    now: str = "closed"
    open_share: float | None = None


@dataclass(frozen=True)
class MirrorFigures:
    """One direction of a feature's mirror, by the side it delivers to. `backlog` and
    `lag_seconds` are the newest report of the mirror applier (None: none in the window);
    `pushed`/`deferred`: writes mirrored at once / left to the applier."""

    target: str
    pushed: int = 0
    deferred: int = 0
    backlog: int | None = None
    backlog_peak: int | None = None
    lag_seconds: float | None = None


@dataclass(frozen=True)
class FeatureEvidence:
    feature: str
    window_seconds: int
    since: int  # the first bucket's start, epoch seconds
    until: int  # the end of the window, epoch seconds
    local: SideFigures
    remote: SideFigures
    methods: tuple[MethodFigures, ...] = ()
    shadow: ShadowFigures = field(default_factory=ShadowFigures)
    breaker: BreakerFigures = field(default_factory=BreakerFigures)
    fallbacks: Mapping[str, int] = field(default_factory=dict)  # by reason
    mirror: tuple[MirrorFigures, ...] = ()

    def side(self, name: str) -> SideFigures:
        return self.local if name == LOCAL else self.remote


class EvidenceReader(Protocol):
    """The read API: the gates, the guard, the admin API and a dashboard use only this."""

    def feature(self, name: str, window_seconds: int) -> FeatureEvidence: ...

    def features(self, window_seconds: int) -> dict[str, FeatureEvidence]: ...
