"""When the guard acts: pure rules over the evidence and the audit log, with no clock of
their own (the caller gives `now`), so a test can walk them through time.

**A breach** (`breach`) is the remote side failing for the whole window: in every
evidence bucket of it, not just on average, so a burst that is over in a few seconds never
moves a feature, however bad. A bucket fails when, there:
- more than `max_error_rate` of its remote calls failed (a bucket without a remote call
  does not fail on errors: no proof);
- its remote p99 is above `max_p99_ms` (unless that is 0);
- or (if `breaker_open`) some worker reported the feature's breaker not closed. While it is
  open the service gets only trial calls, so an outage the breaker already contains would
  otherwise leave buckets with no remote call to fail.
A bucket may fail one way and the next another (the errors that open the breaker, then the
breaker). And the window as a whole must carry weight: at least `min_calls` remote calls,
or the breaker not closed in every bucket.

**Standing** (`standing`): the guard acts on a feature at most once per forward move. After
it acted, it waits `cooldown` seconds and until someone moved the feature forward again
(an audit entry, after the guard's, whose new stage is past its old one). And it judges a
stage only once the feature has been in it for the whole window, so a feature just moved
forward is not rolled back on what its previous stage did.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from shims.evidence.model import FeatureEvidence
from shims.flags.model import AuditEntry, parse_described
from shims.gates.config import GuardSettings
from shims.gates.path import position

GUARD_ACTOR = "turnout-guard"
GUARDED_MODES = frozenset({"canary", "live", "rampdown", "remote"})  # the service answers users


@dataclass(frozen=True)
class Breach:
    limit: str  # how the buckets failed: error_rate, p99, breaker_open, joined by "+"
    detail: str  # short, with the numbers: it goes into the audit log's actor column


@dataclass(frozen=True)
class Standing:
    armed: bool
    why: str


def breach(whole: FeatureEvidence, buckets: Sequence[FeatureEvidence],
           guard: GuardSettings) -> Breach | None:
    """The breach, if every bucket of the window failed; None otherwise."""
    if not buckets:
        return None
    failing = [_failing(bucket, guard) for bucket in buckets]
    if not all(failing):
        return None
    held_open = sum("breaker_open" in ways for ways in failing)
    if whole.remote.calls < guard.min_calls and held_open < len(buckets):
        return None  # too little evidence
    seen = sorted({way for ways in failing for way in ways})
    return Breach("+".join(seen), _detail(whole, len(buckets), held_open, seen))


def _failing(bucket: FeatureEvidence, guard: GuardSettings) -> tuple[str, ...]:
    """The ways this bucket's remote side failed (none: it did not)."""
    remote = bucket.remote
    ways = []
    if _above(remote.error_rate, guard.max_error_rate):
        ways.append("error_rate")
    if guard.max_p99_ms and _above(remote.p99_ms, guard.max_p99_ms):
        ways.append("p99")
    if guard.breaker_open and _above(bucket.breaker.open_share, 0.0):
        ways.append("breaker_open")
    return tuple(ways)


def _detail(whole: FeatureEvidence, buckets: int, held_open: int, seen: list[str]) -> str:
    remote = whole.remote
    parts = [f"remote failing in all {buckets} buckets of {whole.window_seconds}s"]
    if "error_rate" in seen:
        parts.append(f"error rate {remote.error_rate:.0%} of {remote.calls} calls")
    if "p99" in seen:
        parts.append(f"p99 {remote.p99_ms:.0f} ms")
    if "breaker_open" in seen:
        parts.append(f"breaker open in {held_open}")
    return "; ".join(parts)


def _above(value: float | None, limit: float) -> bool:
    return value is not None and value > limit


def standing(history: Sequence[AuditEntry], *, now: dt.datetime, cooldown: int,
             window_start: dt.datetime) -> Standing:
    """May the guard act on this feature now? `history`: its audit log, newest first;
    times naive UTC, as the log keeps them."""
    changes = [entry for entry in history if _flag_change(entry)]
    acted = next((entry for entry in changes if entry.actor.startswith(GUARD_ACTOR)), None)
    if acted is not None:
        ready_at = acted.at + dt.timedelta(seconds=cooldown)
        if now < ready_at:
            return Standing(False, f"cooling down until {ready_at:%H:%M:%S} UTC")
        later = changes[:changes.index(acted)]
        if not any(_forward(entry) for entry in later):
            return Standing(False, f"acted at {acted.at:%H:%M:%S} UTC; waits for the "
                                   "feature to be moved forward again")
    if changes and changes[0].at > window_start:
        return Standing(False, f"in its stage since {changes[0].at:%H:%M:%S} UTC: less than "
                               "a whole window")
    return Standing(True, "armed")


def _flag_change(entry: AuditEntry) -> bool:
    return (parse_described(entry.feature, entry.old) is not None
            and parse_described(entry.feature, entry.new) is not None)


def _forward(entry: AuditEntry) -> bool:
    old = parse_described(entry.feature, entry.old)
    new = parse_described(entry.feature, entry.new)
    return old is not None and new is not None and position(new) > position(old)
