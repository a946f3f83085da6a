"""What one worker knows about its flag store, and how it tells: /healthz, logs, metrics.

The cache reports each look at the store here: the store was read, or it could not be
(`unreadable`, with the FlagStoreError's reason), or it was read but is older than what
the worker serves (`backwards`: restored from a copy, or replaced). Either problem makes
`readable` false and `problem` a sentence saying what is wrong and what to run. A new
problem is logged at once and counted in `turnout_flag_store_problems_total{reason}`; the
same problem again at most every COMPLAINT_INTERVAL seconds, so a store that stays broken
is loud without flooding the log; the way back is logged once.
"""

from __future__ import annotations

import logging

from shims.flags import problems
from shims.logs import event
from shims.metrics import TurnoutMetrics

log = logging.getLogger("turnout.flags")
COMPLAINT_INTERVAL = 10.0  # seconds between repeated log lines about the same problem


class StoreHealth:
    def __init__(self, metrics: TurnoutMetrics | None = None):
        self._metrics = metrics
        self.readable = True
        self.reason: str | None = None
        self.problem: str | None = None
        self.store_version: int | None = None  # the version last read from the store
        self._complained_at = float("-inf")
        self._gauge: int | None = None  # the value last written to the readable gauge

    def read(self, store_version: int) -> None:
        self.store_version = store_version
        if self.reason is not None:
            event(log, "flag_store_readable_again", logging.WARNING, was=self.reason,
                  store_version=store_version)
        self._set(readable=True, reason=None, problem=None)

    def unreadable(self, error: Exception, serving: int, now: float) -> None:
        reason = getattr(error, "reason", problems.ERROR)
        message = getattr(error, "message", None) or repr(error)
        self._report(now, "flag_store_unreadable", reason, message, error=message,
                     serving_version=serving)

    def backwards(self, store_version: int, serving: int, now: float) -> None:
        self.store_version = store_version
        problem = (f"the flag store carries version {store_version}, older than version "
                   f"{serving} that this worker serves: restored from an older copy, or "
                   f"replaced? This worker keeps serving version {serving} and takes up the "
                   "next change; `turnout flags list` shows the store's flags, `turnout flags "
                   "repair` makes them current")
        self._report(now, "flag_store_version_backwards", problems.BACKWARDS, problem,
                     store_version=store_version, serving_version=serving,
                     likely_cause="restored from an older copy, or replaced",
                     action="turnout flags list; turnout flags repair")

    def _report(self, now: float, name: str, reason: str, problem: str, **fields) -> None:
        new = reason != self.reason
        if new and self._metrics is not None:
            self._metrics.flag_store_problems.labels(reason).inc()
        if new or now - self._complained_at >= COMPLAINT_INTERVAL:
            self._complained_at = now
            event(log, name, logging.ERROR, reason=reason, **fields)
        self._set(readable=False, reason=reason, problem=problem)

    def _set(self, *, readable: bool, reason: str | None, problem: str | None) -> None:
        self.readable, self.reason, self.problem = readable, reason, problem
        if self._metrics is not None and self._gauge != int(readable):
            self._gauge = int(readable)  # a gauge write only when it changes
            self._metrics.flag_store_readable.set(self._gauge)
