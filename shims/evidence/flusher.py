"""The greenlet that moves a worker's evidence into the shared table every few seconds.

Each flush samples the worker's breakers, takes what the recorder counted since the last
flush and adds it to the table in one transaction; about once a minute it also drops the
buckets older than the table keeps. A flush that fails (the store locked, damaged or
down) never reaches a request: its rows are given back for the next flush, the failure is
counted (`turnout_evidence_flushes_total{outcome="failed"}`) and logged at most once a
minute (`evidence_flush_failed`). What a worker counted since its last flush is lost if it
dies: a few seconds of one worker's share.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import gevent

from shims.breaker import CircuitBreaker
from shims.evidence.recorder import EvidenceRecorder
from shims.evidence.store import SqlEvidenceStore
from shims.logs import event
from shims.metrics import TurnoutMetrics

log = logging.getLogger("turnout.evidence")


class EvidenceFlusher:
    def __init__(self, recorder: EvidenceRecorder, store: SqlEvidenceStore, *,
                 interval: float, keep_seconds: int,
                 breakers: Mapping[str, CircuitBreaker] | None = None,
                 metrics: TurnoutMetrics | None = None, prune_every: float = 60.0,
                 complain_every: float = 60.0, clock: Callable[[], float] = time.time):
        self.recorder = recorder
        self.store = store
        self.interval = interval
        self._keep = keep_seconds
        self._breakers = dict(breakers or {})
        self._metrics = metrics
        self._prune_every = prune_every
        self._complain_every = complain_every
        self._clock = clock
        self._pruned_at = float("-inf")
        self._complained_at = float("-inf")
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.interval)
            self.flush()

    def flush(self) -> bool:
        """One flush (tests call it directly); False if it failed and will be retried."""
        for feature, breaker in self._breakers.items():
            self.recorder.breaker(feature, breaker.state)
        rows = self.recorder.take()
        try:
            self.store.add(rows)
            self._prune_now_and_then()
        except Exception as exc:  # a flush must never fail anything else: count, log, retry
            self.recorder.give_back(rows, keep_from=self._oldest_kept())
            self._count("failed")
            self._complain(exc)
            return False
        self._count("ok")
        return True

    def _prune_now_and_then(self) -> None:
        now = self._clock()
        if now - self._pruned_at >= self._prune_every:
            self._pruned_at = now
            self.store.prune(self._oldest_kept())

    def _oldest_kept(self) -> int:
        return int(self._clock()) - self._keep

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.evidence_flushes.labels(outcome).inc()

    def _complain(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._complained_at >= self._complain_every:
            self._complained_at = now
            event(log, "evidence_flush_failed", logging.WARNING, error=repr(exc)[:300],
                  meaning="kept in memory and written at the next flush; requests unaffected")
