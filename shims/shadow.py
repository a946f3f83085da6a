"""Shadow reads: the other side answers the same read in a greenlet, and we compare.

**Off the serving path.** The worker serves every request on one gevent loop, so any
shadow work that runs while a request is being served delays that request's answer. So the
shadow waits for the primary: `start` (in the request, before the primary call) only takes
a slot and notes the request's context; once the primary has answered, the router hands
over its outcome (`compare_with`) and a greenlet is spawned, which cannot run before the
request's greenlet yields, in the usual case after the response has been written. It then
waits until the loop is idle (`gevent.idle`: no request's socket or timer pending; one
shadow per loop iteration), makes the shadow call, waits for an idle loop again, and only then
converts both answers to wire form, compares, counts and reports. A worker busy enough that
its loop is not idle within `idle_wait` seconds drops the shadow instead, counted as
`skipped_busy` (as when all `max_in_flight` slots are taken): shadow work gives way, it
never queues in front of a primary. The primary path never waits for a shadow, never sees
its errors and never reads its answer. The shadow has its own timeout. What is left in the
loop is the shadow call's own receive and decode, which run when its answer arrives (they
belong to the transport). Mismatch rows are written by the sink (shims/mismatches.py:
batched, by one writer greenlet, when the loop is idle).

**Context.** A new greenlet starts with none of the request's context variables, so
Flask's `current_app` (and with it Flask-SQLAlchemy's `db.session`) would be missing
on the shadow side. When a shadow starts inside an app context, the runner keeps the
app and the shadow side runs inside a *fresh* `app.app_context()` of it, pushed in
the shadow greenlet and popped when its call ends: fresh, because the request's own
context is torn down when the request ends, maybe before the shadow runs, and
Flask-SQLAlchemy scopes its session to the app context (so the shadow gets its own
session, removed at the pop). Without an app context (a CLI, a plain test) nothing
is pushed. Anything else the shadow side needs (a tenant id, a request-scoped
object) comes from `context`: one factory, or a list of them, each called with no
argument when the shadow starts, in the request's greenlet, where the request's
state is still readable; each returns a context manager, entered in the shadow
greenlet (inside the app context, in list order) around the shadow call::

    def tenant() -> ContextManager:
        tenant_id = g.tenant_id                 # read now, in the request
        return tenants.bound(tenant_id)         # entered later, in the shadow

    ShadowRunner("profiles", metrics, sink, context=tenant)

A factory that raises skips that shadow (counted and logged as a `shadow_error`);
the request never sees it. The request's trace context is handed over the same way, so
the shadow's span and its remote call belong to the request's trace.

**The primary's answer** is converted to wire form in the shadow's greenlet, not in the
request: contract values are frozen dataclasses, so it reads what the request returned (a
list or dict at the top is copied at the hand-off, in case the view sorts it in place).

**Errors.** Every `shadow_error` is logged as a `shadow_error` event at WARNING
naming the feature, method, exception type and message. Its traceback is attached
(`exc_info`) once per method and exception type every `error_log_interval` seconds:
a broken shadow side fails on every read, and a traceback per read would flood the
log and cost the serving worker the formatting, while the one-line events still
show the rate.

**Observing.** `drain(timeout)` waits until every shadow started so far has finished
(a test harness calls it before a test ends: a test that never yields to the gevent
hub would otherwise compare nothing), and listeners (`listener=`, `add_listener`)
receive a `ShadowOutcome` for every result the metric counts, a mismatch with its
`Mismatch`, an error with its exception. `ShadowRecorder` is a listener that keeps
them, so a harness can fail a test on any mismatch.

**Rechecks.** A mismatch may only be a read that raced a write: the primary side had the
write, the shadow side had not received its mirror yet. With `recheck_after` set, the
greenlet waits that long, asks both sides again and compares once more: agreeing now, the
mismatch was `transient`; still differing, `persistent`; either side failing, `failed`
(counted in `turnout_shadow_rechecks_total`, and told to listeners as a `recheck_<result>`
outcome, which the evidence counts). Only reads are shadowed, so asking again is safe. A
runner with `context` hooks does not recheck (their context managers were made for one
call in the request), nor does one with `max_in_flight // 10` rechecks already waiting, nor
one whose loop is not idle in time (`skipped`): an unchecked mismatch counts as persistent.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
from flask import Flask, current_app, has_app_context
from gevent.lock import BoundedSemaphore, Semaphore
from opentelemetry.context import Context

from shims import telemetry
from shims.compare import differences
from shims.contract import MethodSpec
from shims.errors import ContractError
from shims.logs import event
from shims.metrics import TurnoutMetrics
from shims.wire import to_wire

log = logging.getLogger("turnout.shadow")

ContextFactory = Callable[[], AbstractContextManager[Any]]
# Results that mean the two sides did not agree, or the shadow side could not say.
PROBLEMS = frozenset({"mismatch", "shadow_error", "shadow_timeout"})


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


@dataclass(frozen=True)
class ShadowOutcome:
    """What became of one shadow: `result` is the metric's label (match, mismatch,
    shadow_error, shadow_timeout, skipped_busy, skipped_<reason>)."""

    feature: str
    method: str
    result: str
    mismatch: Mismatch | None = None
    error: BaseException | None = None

    @property
    def problem(self) -> bool:
        return self.result in PROBLEMS

    def __str__(self) -> str:
        detail = ""
        if self.mismatch is not None:
            detail = " at " + ", ".join(self.mismatch.differences)
        elif self.error is not None:
            detail = f": {type(self.error).__name__}: {self.error}"
        return f"{self.feature} {self.method}: {self.result}{detail}"


class ShadowListener(Protocol):
    def __call__(self, outcome: ShadowOutcome) -> None: ...


class ShadowRecorder:
    """A listener that keeps every outcome, for a test harness: attach it, run the test,
    `drain`, then fail on `problems()` (as Scientist's `raise_on_mismatches` does)."""

    def __init__(self) -> None:
        self.outcomes: list[ShadowOutcome] = []

    def __call__(self, outcome: ShadowOutcome) -> None:
        self.outcomes.append(outcome)

    def problems(self) -> list[ShadowOutcome]:
        return [outcome for outcome in self.outcomes if outcome.problem]

    def clear(self) -> None:
        self.outcomes.clear()


class PendingShadow:
    """One shadow between `start` and the primary's outcome: the router tells it how the
    primary ended (`compare_with`), or that there is nothing to compare (`cancel`)."""

    def __init__(self, runner: ShadowRunner, method: MethodSpec, primary_side: str,
                 call: Callable[[], Any], recheck: Callable[[], tuple[Any, Any]] | None,
                 trace_context: Context):
        self.method = method
        self.primary_side = primary_side
        self.call = call
        self.recheck = recheck
        self.trace_context = trace_context
        self._runner: ShadowRunner | None = runner

    def compare_with(self, primary: Callable[[], Any]) -> None:
        """`primary` returns the primary's answer or raises its error; it is called in the
        shadow's greenlet, after the response."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner._launch(self, primary)

    def cancel(self) -> None:
        """The primary was interrupted, or its answer came from elsewhere (a fallback):
        no shadow; its slot is free again."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner._release()


class ShadowRunner:
    def __init__(self, feature: str, metrics: TurnoutMetrics, sink: MismatchSink | None = None, *,
                 timeout: float = 2.0, max_in_flight: int = 100,
                 ignore: frozenset[str] = frozenset(),
                 context: ContextFactory | Sequence[ContextFactory] | None = None,
                 listener: ShadowListener | None = None,
                 error_log_interval: float = 60.0, recheck_after: float = 0.0,
                 idle_wait: float = 1.0):
        """`context`: factories of the context managers the shadow call runs in (see the
        module's docstring); `listener`: told every outcome; `error_log_interval`: seconds
        between two tracebacks of the same method and exception type; `recheck_after`:
        seconds after a mismatch before both sides are asked again (0: never);
        `idle_wait`: seconds a shadow waits for an idle loop before it is dropped."""
        self.feature = feature
        self._metrics = metrics
        self._sink = sink
        self._timeout = timeout
        self._ignore = ignore
        self._slots = BoundedSemaphore(max_in_flight)
        self._contexts: tuple[ContextFactory, ...] = (
            () if context is None else (context,) if callable(context) else tuple(context))
        self._listeners: list[ShadowListener] = [] if listener is None else [listener]
        self._error_log_interval = error_log_interval
        self._traceback_logged: dict[tuple[str, str], float] = {}
        self._in_flight: set[gevent.Greenlet] = set()
        self._recheck_after = recheck_after
        self._recheck_slots = BoundedSemaphore(max(1, max_in_flight // 10))
        self._idle_wait = idle_wait
        self._idle_gate = Semaphore()  # one shadow per idle moment
        self._ready: deque[tuple[PendingShadow, Callable[[], Any]]] = deque()
        self._spawn_scheduled = False
        self.synchronous = False  # see _launch

    def start(self, method: MethodSpec, primary_side: str, shadow_call: Callable[[], Any],
              primary_again: Callable[[], Any] | None = None) -> PendingShadow | None:
        """Called in the request before the primary call: takes a slot and notes the
        request's context; returns what to hand the primary's outcome to, or None if
        skipped. Nothing of the shadow runs yet. `primary_again`: the primary side's call,
        made again for a recheck."""
        if not self._slots.acquire(blocking=False):
            self._count(method, "skipped_busy")
            return None
        try:
            app, contexts = _current_app(), [factory() for factory in self._contexts]
        except Exception as error:  # a hook's bug must not reach the request
            self._slots.release()
            self._failed(method, error)
            return None
        recheck = None
        if primary_again is not None and self._recheck_after > 0 and not contexts:
            recheck = _both_again(app, primary_again, shadow_call)
        return PendingShadow(self, method, primary_side,
                             lambda: _within(app, contexts, shadow_call, self._idle_or_busy),
                             recheck,
                             telemetry.current_context())  # the greenlet starts with none

    def _launch(self, pending: PendingShadow, primary: Callable[[], Any]) -> None:
        """The primary has answered: the shadow is queued, and spawned by `_spawn_ready`, a
        loop callback that runs once the request yields (a spawn in the request would cost
        it ~20 us). A test harness sets `synchronous`: the shadow then finishes before the
        routed call returns, so it reads what the primary read, never what a later step of
        the test wrote."""
        self._ready.append((pending, primary))
        if self.synchronous:
            self.drain(self._timeout + self._recheck_after + self._idle_wait * 3 + 1.0)
        elif not self._spawn_scheduled:
            self._spawn_scheduled = True
            gevent.get_hub().loop.run_callback(self._spawn_ready)

    def _spawn_ready(self) -> None:
        self._spawn_scheduled = False
        while self._ready:
            greenlet = gevent.spawn(self._traced_run, *self._ready.popleft())
            self._in_flight.add(greenlet)
            greenlet.link(self._finished)

    def _release(self) -> None:
        self._slots.release()

    def skip(self, method: MethodSpec, reason: str) -> None:
        """A shadow the router chose not to run (e.g. its service's breaker is open)."""
        self._count(method, "skipped_" + reason)

    def drain(self, timeout: float) -> int:
        """Waits, yielding to the hub, at most `timeout` seconds until every shadow started
        so far (and any started meanwhile) has finished and reported; returns how many are
        still running (0 when all have).

        A harness should drain after each request, not only when a test ends: a shadow
        that has not run yet reads the state as it is when it runs, so a write later in
        the same test would show as a mismatch."""
        deadline = time.monotonic() + timeout
        while True:
            self._spawn_ready()  # those the loop has not spawned yet
            running = [greenlet for greenlet in self._in_flight if not greenlet.dead]
            left = deadline - time.monotonic()
            if not running or left <= 0:
                return len(running)
            gevent.joinall(running, timeout=left)

    def add_listener(self, listener: ShadowListener) -> Callable[[], None]:
        """Tells `listener` every outcome from now on; returns what detaches it."""
        self._listeners.append(listener)

        def detach() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return detach

    def _finished(self, greenlet: gevent.Greenlet) -> None:
        self._in_flight.discard(greenlet)
        self._slots.release()

    def _traced_run(self, pending: PendingShadow, primary: Callable[[], Any]) -> None:
        """`_run` in a span of its own, a child of the routed call's (which may have ended
        by the time the shadow compares); its remote call, if any, is the span's child."""
        method = pending.method
        with telemetry.attached(pending.trace_context), telemetry.child_span(
                f"turnout shadow {method.qualified_name}",
                attributes={"turnout.feature": self.feature,
                            "turnout.method": method.qualified_name}):
            self._run(pending, primary)

    def _idle_or_busy(self) -> None:
        """Between the shadow call and its wire conversion: requests that came in while
        the shadow side answered go first; raises _LoopBusy if they keep the loop busy."""
        if not self._idle():
            raise _LoopBusy()

    def _idle(self) -> bool:
        """Waits until the loop has nothing else to do (no request's socket or timer
        pending); False if it did not within `idle_wait`: the worker is too busy. One
        shadow at a time passes: every waiting idle watcher fires in the same idle moment,
        and letting them all run at once would be the burst a request arriving then waits
        behind."""
        with gevent.Timeout(self._idle_wait, False), self._idle_gate:
            gevent.idle()
            return True
        return False

    def _run(self, pending: PendingShadow, primary_call: Callable[[], Any]) -> None:
        method = pending.method
        if not self._idle():
            self._count(method, "skipped_busy")
            return
        try:
            with gevent.Timeout(self._timeout):
                shadow, error = _classified(pending.call)
        except gevent.Timeout as timeout:
            self._count(method, "shadow_timeout", error=timeout)
            return
        if isinstance(error, _LoopBusy):
            self._count(method, "skipped_busy")
            return
        if error is not None:
            self._failed(method, error)
            return
        primary = outcome_of(primary_call)
        primary_side = pending.primary_side
        recheck = pending.recheck
        found = tuple(differences(primary, shadow, self._ignore))
        if not found:
            self._count(method, "match")
            return
        mismatch = Mismatch(feature=self.feature, method=method.qualified_name,
                            primary_side=primary_side, primary=primary, shadow=shadow,
                            differences=found)
        self._count(method, "mismatch", mismatch=mismatch)
        self._report(mismatch)
        if recheck is not None:
            self._recheck(method, recheck)

    def _recheck(self, method: MethodSpec, recheck: Callable[[], tuple[Any, Any]]) -> None:
        """Both sides asked again a moment later: transient, persistent or failed."""
        if not self._recheck_slots.acquire(blocking=False):
            self._count_recheck(method, "skipped")
            return
        try:
            gevent.sleep(self._recheck_after)
            if not self._idle():
                self._count_recheck(method, "skipped")
                return
            with gevent.Timeout(self._timeout):
                primary, shadow = recheck()
        except gevent.Timeout:
            primary = shadow = {"unexpected": "Timeout"}
        finally:
            self._recheck_slots.release()
        if "unexpected" in primary or "unexpected" in shadow:
            self._count_recheck(method, "failed")
        else:
            found = differences(primary, shadow, self._ignore)
            self._count_recheck(method, "persistent" if found else "transient")

    def _count_recheck(self, method: MethodSpec, result: str) -> None:
        self._metrics.shadow_rechecks.labels(self.feature, method.qualified_name, result).inc()
        self._tell(ShadowOutcome(self.feature, method.qualified_name, "recheck_" + result))

    def _failed(self, method: MethodSpec, error: Exception) -> None:
        self._count(method, "shadow_error", error=error)
        key = (method.qualified_name, type(error).__name__)
        now = time.monotonic()
        last = self._traceback_logged.get(key)
        with_traceback = last is None or now - last >= self._error_log_interval
        if with_traceback:
            self._traceback_logged[key] = now
        event(_Traceback(log, error if with_traceback else None), "shadow_error",
              logging.WARNING, feature=self.feature, method=method.qualified_name,
              error_type=type(error).__name__, error=str(error),
              traceback="attached" if with_traceback else
              f"omitted: logged for this error less than {self._error_log_interval:g}s ago")

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

    def _count(self, method: MethodSpec, result: str, *, mismatch: Mismatch | None = None,
               error: BaseException | None = None) -> None:
        self._metrics.shadow.labels(self.feature, method.qualified_name, result).inc()
        _trace_outcome(result, mismatch, error)
        if self._listeners:
            self._tell(ShadowOutcome(self.feature, method.qualified_name, result, mismatch,
                                     error))

    def _tell(self, outcome: ShadowOutcome) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(outcome)
            except Exception as exc:  # a listener runs in a shadow or a request: never break it
                event(log, "shadow_listener_failed", logging.ERROR, feature=self.feature,
                      error=repr(exc))


def _trace_outcome(result: str, mismatch: Mismatch | None, error: BaseException | None) -> None:
    """On the current span: the shadow's own in its greenlet, the routed call's when the
    router skipped the shadow or its start failed."""
    span = telemetry.active_span()
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {"turnout.shadow.result": result}
    if mismatch is not None:
        attributes["turnout.shadow.differences"] = list(mismatch.differences)[:20]
    if error is not None:
        attributes["error.type"] = type(error).__name__
    span.set_attribute("turnout.shadow.result", result)
    span.add_event("turnout.shadow", attributes)


class _Traceback(logging.LoggerAdapter):
    """Hands `error` to the logger as `exc_info`, so `event`'s one JSON line carries the
    traceback without `event` needing to know about it."""

    def __init__(self, logger: logging.Logger, error: BaseException | None):
        super().__init__(logger, {})
        self._error = error

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        if self._error is not None:
            kwargs["exc_info"] = self._error
        return msg, kwargs


def _current_app() -> Flask | None:
    """The app of the calling request (the object, not the proxy, which only resolves in
    the greenlet that pushed it), or None outside any app context."""
    return current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]


class _LoopBusy(Exception):
    """The loop was not idle in time after the shadow call: the shadow is dropped."""


def _within(app: Flask | None, contexts: list[AbstractContextManager[Any]],
            call: Callable[[], Any], pause: Callable[[], None] = lambda: None) -> Any:
    """The shadow's answer in wire form, computed in a fresh app context of `app` and the
    hooks' contexts: wire conversion too, since it may read lazily loaded state. `pause`
    runs between the call and the conversion (still in the contexts)."""
    with ExitStack() as stack:
        if app is not None:
            stack.enter_context(app.app_context())
        for context in contexts:
            stack.enter_context(context)
        answer = call()
        pause()
        return to_wire(answer)


def _both_again(app: Flask | None, primary: Callable[[], Any],
                shadow: Callable[[], Any]) -> Callable[[], tuple[Any, Any]]:
    """A recheck's two calls, each in a fresh app context, in comparable form."""

    def again() -> tuple[Any, Any]:
        return (_classified(lambda: _within(app, [], primary))[0],
                _classified(lambda: _within(app, [], shadow))[0])
    return again


def outcome_of(call: Callable[[], Any]) -> dict[str, Any]:
    return _classified(lambda: to_wire(call()))[0]


def handed_over(result: Any) -> Callable[[], Any]:
    """The primary's answer for the shadow to read later: a list or dict at the top is
    copied (cheap, shallow), so a view sorting it in place does not change what is compared;
    contract values below are frozen."""
    kept = list(result) if isinstance(result, list) else (
        dict(result) if isinstance(result, dict) else result)
    return lambda: kept


def raised(error: Exception) -> Callable[[], Any]:
    """The primary's error, raised again when the shadow reads the primary's outcome."""
    def again() -> Any:
        raise error
    return again


def _classified(call: Callable[[], Any]) -> tuple[dict[str, Any], Exception | None]:
    """An answer in comparable form: the result, or the contract error it raised, and
    the unexpected exception if there was one. Two sides refusing the same call with the
    same error is a match."""
    try:
        return {"result": call()}, None
    except ContractError as error:
        return {"error": error.code}, None
    except Exception as error:  # transport failure or bug on the shadow side
        return {"unexpected": type(error).__name__}, error
