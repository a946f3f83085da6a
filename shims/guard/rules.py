"""When the guard acts: pure rules over the evidence and the audit log, with no clock of
their own (the caller gives `now`), so a test can walk them through time.

**A breach** (`breach`) is the remote side failing one of the guard's limits over the whole
window, and in every evidence bucket of it, not just on average: a burst that is over in a
few seconds never moves a feature, however bad. The limits:
- error rate: at least `min_calls` remote calls in the window, and more than
  `max_error_rate` of them failed, in the window and in each bucket (a bucket without a
  remote call does not hold the breach);
- p99 (unless `max_p99_ms` is 0): above `max_p99_ms`, likewise;
- breaker open (if `breaker_open`): some worker reported the feature's breaker not closed
  in every bucket. While it is open the remote side gets only trial calls, so the error
  rate alone would miss an outage that the breaker already contains.

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
    limit: str  # error_rate, p99, breaker_open
    detail: str  # short, with the numbers: it goes into the audit log's actor column


@dataclass(frozen=True)
class Standing:
    armed: bool
    why: str


def breach(whole: FeatureEvidence, buckets: Sequence[FeatureEvidence],
           guard: GuardSettings) -> Breach | None:
    """The first limit the remote side broke for the whole window, or None."""
    if not buckets:
        return None
    return (_error_rate(whole, buckets, guard) or _p99(whole, buckets, guard)
            or _breaker(whole, buckets, guard))


def _error_rate(whole: FeatureEvidence, buckets: Sequence[FeatureEvidence],
                guard: GuardSettings) -> Breach | None:
    remote, limit = whole.remote, guard.max_error_rate
    if remote.calls < guard.min_calls or not _above(remote.error_rate, limit):
        return None
    if not all(_above(bucket.remote.error_rate, limit) for bucket in buckets):
        return None
    return Breach("error_rate", f"remote error rate {remote.error_rate:.0%} of {remote.calls} "
                                f"calls over {whole.window_seconds}s, above {limit:.0%} "
                                "in every bucket")


def _p99(whole: FeatureEvidence, buckets: Sequence[FeatureEvidence],
         guard: GuardSettings) -> Breach | None:
    remote, limit = whole.remote, guard.max_p99_ms
    if not limit or remote.calls < guard.min_calls or not _above(remote.p99_ms, limit):
        return None
    if not all(_above(bucket.remote.p99_ms, limit) for bucket in buckets):
        return None
    return Breach("p99", f"remote p99 {remote.p99_ms:.0f} ms over {whole.window_seconds}s "
                         f"({remote.calls} calls), above {limit:g} ms in every bucket")


def _breaker(whole: FeatureEvidence, buckets: Sequence[FeatureEvidence],
             guard: GuardSettings) -> Breach | None:
    if not guard.breaker_open:
        return None
    if not all(_above(bucket.breaker.open_share, 0.0) for bucket in buckets):
        return None
    share = whole.breaker.open_share or 0.0
    return Breach("breaker_open", f"breaker not closed in every bucket of "
                                  f"{whole.window_seconds}s ({share:.0%} of worker samples)")


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
