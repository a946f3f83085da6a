"""Parallel run: the other side answers the same read in a greenlet, and we compare.

The shadow greenlet is spawned before the primary call starts, so both sides
run at the same time, and it only ever *receives* the primary's outcome: the
primary path never waits for it, never sees its errors and never reads its
answer. It has its own timeout, and a cap on how many may be in flight at once
so a slow shadow side cannot pile up greenlets in the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
from gevent.event import AsyncResult
from gevent.lock import BoundedSemaphore

from shims.compare import differences
from shims.contract import MethodSpec
from shims.errors import ContractError
from shims.logs import event
from shims.metrics import TurnoutMetrics
from shims.wire import to_wire

log = logging.getLogger("turnout.shadow")


@dataclass(frozen=True)
class Mismatch:
    feature: str
    method: str
    primary_side: str
    primary: Any  # wire form of the answer or {"error": code}
    shadow: Any
    differences: tuple[str, ...]


class MismatchSink(Protocol):
    def record(self, mismatch: Mismatch) -> None: ...


class ShadowRunner:
    def __init__(self, feature: str, metrics: TurnoutMetrics, sink: MismatchSink | None = None, *,
                 timeout: float = 2.0, max_in_flight: int = 100,
                 ignore: frozenset[str] = frozenset()):
        self.feature = feature
        self._metrics = metrics
        self._sink = sink
        self._timeout = timeout
        self._ignore = ignore
        self._slots = BoundedSemaphore(max_in_flight)

    def start(self, method: MethodSpec, primary_side: str,
              shadow_call: Callable[[], Any]) -> AsyncResult | None:
        """Spawn the shadow; returns where to put the primary's outcome, or None if skipped."""
        if not self._slots.acquire(blocking=False):
            self._count(method, "skipped_busy")
            return None
        primary_outcome = AsyncResult()
        greenlet = gevent.spawn(self._run, method, primary_side, shadow_call, primary_outcome)
        greenlet.link(lambda _: self._slots.release())
        return primary_outcome

    def skip(self, method: MethodSpec, reason: str) -> None:
        """A shadow the router chose not to run (e.g. its service's breaker is open)."""
        self._count(method, "skipped_" + reason)

    def _run(self, method: MethodSpec, primary_side: str, shadow_call: Callable[[], Any],
             primary_outcome: AsyncResult) -> None:
        try:
            with gevent.Timeout(self._timeout):
                shadow = _outcome(shadow_call)
        except gevent.Timeout:
            self._count(method, "shadow_timeout")
            return
        if shadow.get("unexpected"):
            self._count(method, "shadow_error")
            return
        primary = primary_outcome.get()  # set by the router right after the primary returns
        if primary is None:  # the primary call was interrupted: there is no answer to compare
            return
        found = tuple(differences(primary, shadow, self._ignore))
        self._count(method, "mismatch" if found else "match")
        if found:
            self._report(Mismatch(feature=self.feature, method=method.qualified_name,
                                  primary_side=primary_side, primary=primary, shadow=shadow,
                                  differences=found))

    def _report(self, mismatch: Mismatch) -> None:
        event(log, "shadow_mismatch", logging.WARNING, feature=mismatch.feature,
              method=mismatch.method, primary_side=mismatch.primary_side,
              differences=list(mismatch.differences), primary=mismatch.primary,
              shadow=mismatch.shadow)
        if self._sink is not None:
            try:
                self._sink.record(mismatch)
            except Exception as exc:  # recording must never break anything
                event(log, "mismatch_not_recorded", logging.ERROR, error=repr(exc))

    def _count(self, method: MethodSpec, result: str) -> None:
        self._metrics.shadow.labels(self.feature, method.qualified_name, result).inc()


def outcome_of(call: Callable[[], Any]) -> dict[str, Any]:
    return _outcome(call)


def _outcome(call: Callable[[], Any]) -> dict[str, Any]:
    """An answer in comparable form: the result, or the contract error it raised.
    Two sides refusing the same call with the same error is a match."""
    try:
        return {"result": to_wire(call())}
    except ContractError as error:
        return {"error": error.code}
    except Exception as error:  # transport failure or bug on the shadow side
        return {"unexpected": type(error).__name__}
