"""The turnout itself: for each call, choose the side from the feature's flag.

A `Router` implements a contract by delegating every method to the local or
the remote implementation, decided per call:

1. the flag snapshot (in memory; see `shims.flags.cache`) gives the mode, or the
   kill switch sends everything local;
2. `plan_route` turns mode, method kind and actor into a `Route`: who answers,
   who shadows a read, who receives a mirrored write;
3. the breaker guards the remote side: while it is open, reads are answered
   locally and writes that need the remote side are refused with 503 and a
   Retry-After, never applied to one side only;
4. the answer goes back; the shadow runs and compares in its own greenlet after the
   answer, when the loop is idle (shims/shadow.py); a mirrored write pushes the
   touched rows to the other side at once (`shims.mirror`). The write's outbox entry
   was recorded in its own transaction, so a push that fails (the other side down,
   the breaker open) loses nothing: the entry stays pending and the feature's applier
   delivers it later.

In a sampled trace each call is a span (`turnout <contract>.<method>`) saying which side
was chosen and why, with the mirror push's outcome as an event (docs/turnout.md §8).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span

from shims import telemetry, trace
from shims.breaker import STATE_VALUES, CircuitBreaker
from shims.canary import goes_remote
from shims.contract import ACTOR_PARAMETER, ContractSpec, MethodSpec
from shims.errors import ContractError, DeadlineExceeded, ServiceTimeout, TransportError
from shims.evidence.model import EvidenceSink, NoEvidence
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo, Flag
from shims.logs import event
from shims.metrics import TurnoutMetrics
from shims.shadow import ShadowRunner, handed_over, raised
from shims.mirror import Channel, mirror_channels
from shims.sync import DataSync, Mirror

log = logging.getLogger("turnout.router")
LOCAL, REMOTE = "local", "remote"


class ServiceUnavailable(TransportError):
    """A write needs a remote side that is down, and was not applied; the caller may send
    it again after `retry_after`."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, sent=False)
        self.retry_after = max(1, round(retry_after))


class OutcomeUnknown(ServiceUnavailable):
    """A write reached a remote side that then failed: it may have been applied. The
    service keeps each write's outcome under its Idempotency-Key, so the caller may retry
    with the same key after `retry_after`: it is applied at most once."""

    code = "outcome_unknown"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, retry_after)
        self.sent = True


def write_failed(feature: str, error: TransportError, retry_after: float) -> ServiceUnavailable:
    """The 503 for a remote write that failed, saying only what is known."""
    if not error.sent:
        return ServiceUnavailable(f"{feature} service could not take the write "
                                  f"({error.message}); it was not applied", retry_after)
    return OutcomeUnknown(f"{feature} service failed during the write ({error.message}); "
                          "its outcome is unknown: retrying with the same Idempotency-Key is "
                          "safe, it is applied at most once", retry_after)


@dataclass(frozen=True)
class Route:
    primary: str
    shadow: str | None = None
    mirror_to: str | None = None


def route_attributes(flag: Flag, killed: bool, route: Route) -> dict[str, Any]:
    """A routed call's span attributes: the flag's mode and the sides the route chose."""
    attributes: dict[str, Any] = {"turnout.mode": "killed" if killed else flag.mode,
                                  "turnout.side": route.primary}
    if flag.mode == "canary" and not killed:
        attributes["turnout.percent"] = flag.percent
    if route.shadow is not None:
        attributes["turnout.shadow"] = route.shadow
    if route.mirror_to is not None:
        attributes["turnout.mirror_to"] = route.mirror_to
    return attributes


def other(side: str) -> str:
    return REMOTE if side == LOCAL else LOCAL


def plan_route(flag: Flag, killed: bool, method: MethodSpec, actor: Any,
               owns_data: bool) -> Route:
    """Who answers, who shadows, who gets the mirrored write (model.py has the table)."""
    if killed or flag.mode == "local":
        return Route(LOCAL)
    if flag.mode == "remote":
        return Route(REMOTE)
    if flag.mode == "canary":
        actor_key = actor if actor is not None else method.qualified_name
        primary = REMOTE if goes_remote(flag.feature, actor_key, flag.percent) else LOCAL
        return Route(primary, mirror_to=_mirror(method, owns_data, other(primary)))
    primary = LOCAL if flag.mode in ("dualwrite", "shadow") else REMOTE  # live, rampdown
    shadow = other(primary) if flag.mode in ("shadow", "live") and method.is_read else None
    return Route(primary, shadow=shadow, mirror_to=_mirror(method, owns_data, other(primary)))


def _mirror(method: MethodSpec, owns_data: bool, target: str) -> str | None:
    return target if owns_data and not method.is_read else None


@dataclass
class Sides:
    """The two implementations of one contract, and of the feature's data sync if it owns data."""

    local: Any
    remote: Any
    local_sync: DataSync | None = None
    remote_sync: DataSync | None = None


class Router:
    def __init__(self, feature: FeatureInfo, spec: ContractSpec, sides: Sides, *,
                 flags: FlagCache, breaker: CircuitBreaker, metrics: TurnoutMetrics,
                 shadow: ShadowRunner, mirror: Mirror | None = None,
                 channels: dict[str, Channel] | None = None,
                 clock: Callable[[], float] = time.perf_counter, silent_for: float = 5.0,
                 evidence: EvidenceSink | None = None):
        """`silent_for`: seconds without any answer from the remote side after which calls
        cut short by a request's deadline count as its failures (its read timeout).
        `evidence`: told every call, fallback and mirrored write (shims/evidence)."""
        if feature.owns_data and (mirror is None or sides.local_sync is None
                                  or sides.remote_sync is None):
            raise ValueError(f"feature {feature.name} owns data: give it a mirror and both syncs")
        self.feature = feature
        self.spec = spec
        self._sides = sides
        self._flags = flags
        self._breaker = breaker
        self._metrics = metrics
        self._shadow = shadow
        self._mirror = mirror
        self._evidence = evidence or NoEvidence()
        self._clock = clock
        self._silent_for = silent_for
        self._answered_at = clock()  # the remote side's last answer, of any kind
        self._served_version: int | None = None
        # Shared by every router of the feature and its applier (which settles their pushes).
        self.channels: dict[str, Channel] = channels or (
            mirror_channels(feature.name, sides.local_sync, sides.remote_sync)
            if feature.owns_data else {})
        for method in spec.methods.values():
            setattr(self, method.name, _routed(self, method))

    def call(self, method: MethodSpec, arguments: dict[str, Any]) -> Any:
        """One routed call, as a span of its own when its trace is recorded: its remote
        call, shadow and mirror push are its children, and it says which side was chosen
        and why. In a trace nothing records (the default without an exporter) a span would
        cost its ids and context switch for nothing: measured, it tripled the router's own
        time per call."""
        parent = telemetry.active_span()
        if not telemetry.sampled(parent):
            return self._call(method, arguments, parent)
        span = telemetry.start_span(f"turnout {method.qualified_name}", attributes={
            "turnout.feature": self.feature.name, "turnout.method": method.qualified_name,
            "turnout.read": method.is_read})
        with telemetry.current_span(span):
            try:
                return self._call(method, arguments, span)
            except ContractError as error:  # an answer, not a failure of the route
                span.set_attribute("turnout.outcome", error.code)
                raise
            except Exception as error:
                telemetry.failed(span, error)
                raise

    def _call(self, method: MethodSpec, arguments: dict[str, Any], span: Span) -> Any:
        snapshot = self._flags.snapshot()
        if snapshot.version != self._served_version:  # a gauge write only when it changes
            self._served_version = snapshot.version
            self._metrics.flag_version.set(snapshot.version)
        flag = snapshot.flag(self.feature.name)
        route = plan_route(flag, snapshot.killed, method, arguments.get(ACTOR_PARAMETER),
                           self.feature.owns_data)
        route = self._respect_breaker(route, method)
        if span.is_recording():
            span.set_attributes(route_attributes(flag, snapshot.killed, route))
        shadow = None
        if route.shadow is not None:  # takes a slot; nothing of the shadow runs before the answer
            shadow = self._shadow.start(
                method, route.primary, lambda: self._shadow_call(route.shadow, method, arguments),
                primary_again=lambda: self._shadow_call(route.primary, method, arguments))
        try:
            result, served_by = self._answer(route.primary, method, arguments)
        except Exception as error:
            if shadow is not None:
                shadow.compare_with(raised(error))
            raise
        except BaseException:  # interrupted (a caller's timeout, a killed greenlet)
            if shadow is not None:
                shadow.cancel()  # nothing to compare; frees the shadow's slot
            raise
        if shadow is not None:
            # After a fallback the shadow side answered already: comparing it with itself
            # would only inflate the match rate.
            if served_by == route.primary:
                shadow.compare_with(handed_over(result))
            else:
                shadow.cancel()
        span.set_attribute("turnout.served_by", served_by)
        if route.mirror_to is not None:
            self._mirror_write(route, method, arguments, result)
        return result

    def _respect_breaker(self, route: Route, method: MethodSpec) -> Route:
        needs_remote = route.primary == REMOTE
        if needs_remote and not self._breaker.allow():
            if method.is_read:
                self._fallback(method, "breaker_open")
                return Route(LOCAL)
            raise ServiceUnavailable(f"{self.feature.name} service is unavailable (circuit "
                                     "open); the write was not applied",
                                     self._breaker.retry_after())
        if route.shadow == REMOTE and not self._breaker.allow():
            # Open: don't call a sick service. Half-open, allow() lets one shadow through as
            # the trial, whose outcome closes or reopens the breaker: a feature whose only
            # remote calls are shadows would otherwise never leave half-open.
            self._shadow.skip(method, "breaker_open")
            return Route(route.primary, mirror_to=route.mirror_to)
        return route

    def _answer(self, side: str, method: MethodSpec,
                arguments: dict[str, Any]) -> tuple[Any, str]:
        """The result and the side that gave it (local after a fallback)."""
        if side == LOCAL:
            return self._traced(LOCAL, LOCAL, method, arguments), LOCAL
        try:
            result = self._timed(REMOTE, method, arguments)
        except ContractError:
            self._remote_healthy()
            trace.record(method.qualified_name, REMOTE)
            raise
        except Exception as error:
            self._remote_failed_or_slow(error)
            if not isinstance(error, TransportError):
                raise
            if not method.is_read:
                raise write_failed(self.feature.name, error,
                                   self._breaker.retry_after() or 1) from error
            self._fallback(method, "transport_error")
            return self._traced(LOCAL, "local-fallback", method, arguments), LOCAL
        self._remote_healthy()
        trace.record(method.qualified_name, REMOTE)
        return result, REMOTE

    def _traced(self, side: str, route: str, method: MethodSpec,
                arguments: dict[str, Any]) -> Any:
        """A side's answer, traced as `route` whether it answers or refuses: a 404 from the
        local fallback must not be reported as the remote side's."""
        try:
            result = self._timed(side, method, arguments)
        except ContractError:
            trace.record(method.qualified_name, route)
            raise
        trace.record(method.qualified_name, route)
        return result

    def _timed(self, side: str, method: MethodSpec, arguments: dict[str, Any]) -> Any:
        implementation = self._sides.local if side == LOCAL else self._sides.remote
        started = self._clock()
        outcome = "ok"
        try:
            return getattr(implementation, method.name)(**arguments)
        except ContractError as error:
            outcome = error.code
            raise
        except TransportError:
            outcome = "transport_error"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            labels = (self.feature.name, method.qualified_name, side)
            elapsed = self._clock() - started
            self._metrics.observe_call(labels, outcome, elapsed)
            self._evidence.call(*labels, outcome, elapsed)

    def _shadow_call(self, side: str, method: MethodSpec, arguments: dict[str, Any]) -> Any:
        if side == LOCAL:
            return self._timed(LOCAL, method, arguments)
        try:
            result = self._timed(REMOTE, method, arguments)
        except ContractError:
            self._remote_healthy()
            raise
        except Exception as error:
            self._remote_failed_or_slow(error)
            raise
        self._remote_healthy()
        return result

    def _mirror_write(self, route: Route, method: MethodSpec, arguments: dict[str, Any],
                      result: Any) -> None:
        target = route.mirror_to
        keys = self._mirror.keys_for(method.qualified_name, arguments, result)
        if not keys:
            return
        if target == REMOTE and not self._breaker.allow():
            self._mirror_outcome(target, "deferred_breaker_open", keys)
            return
        try:
            self.channels[target].push(keys)
        except Exception as error:  # the write stands; its outbox entry waits for the applier
            if isinstance(error, TransportError) and target == REMOTE:
                self._remote_failed_or_slow(error)  # a push cut short by the deadline is not
            self._mirror_outcome(target, "deferred", keys, error)
            return
        if target == REMOTE:
            self._remote_healthy()
        self._mirror_outcome(target, "ok", keys)

    def _mirror_outcome(self, target: str, outcome: str, keys: list,
                        error: Exception | None = None) -> None:
        self._metrics.mirrors.labels(self.feature.name, target, outcome).inc()
        self._evidence.mirror_write(self.feature.name, target, outcome)
        span = telemetry.active_span()
        span.set_attribute("turnout.mirror.outcome", outcome)
        span.add_event("turnout.mirror", {"turnout.mirror.target": target,
                                          "turnout.mirror.outcome": outcome,
                                          "turnout.mirror.rows": len(keys)})
        if outcome != "ok":
            event(log, "mirror_write_" + outcome, logging.WARNING, feature=self.feature.name,
                  target=target, keys=keys, error=repr(error) if error else None,
                  meaning="kept in the outbox; the mirror applier delivers it")

    def _fallback(self, method: MethodSpec, reason: str) -> None:
        self._metrics.fallbacks.labels(self.feature.name, method.qualified_name, reason).inc()
        self._evidence.fallback(self.feature.name, method.qualified_name, reason)
        telemetry.active_span().set_attribute("turnout.fallback", reason)

    def _remote_failed(self) -> None:
        self._breaker.record_failure()
        self._metrics.breaker_state.labels(self.feature.name).set(
            STATE_VALUES[self._breaker.state])

    def _remote_failed_or_slow(self, error: Exception) -> None:
        """A call that timed out (its own timeout or our deadline) or never started for want
        of time is the service's failure only once it has answered nothing for `silent_for`:
        slow but answering (a graceful reload, a loaded host) must not open the breaker and
        refuse writes; silent that long (stopped behind a socket circus holds open) is down.
        The price: a service that answers some calls while one method hangs keeps its
        breaker closed, and that method's callers wait out their timeouts."""
        slow = isinstance(error, (DeadlineExceeded, ServiceTimeout))
        silent = self._clock() - self._answered_at >= self._silent_for
        if not slow or (error.sent and silent):
            self._remote_failed()

    def _remote_healthy(self) -> None:
        self._answered_at = self._clock()
        self._breaker.record_success()
        self._metrics.breaker_state.labels(self.feature.name).set(
            STATE_VALUES[self._breaker.state])


def make_breaker(feature: str, metrics: TurnoutMetrics, **options: Any) -> CircuitBreaker:
    """A feature's breaker, whose every state change is logged and counted."""

    def changed(name: str, old: str, new: str) -> None:
        metrics.breaker_transitions.labels(name, new).inc()
        metrics.breaker_state.labels(name).set(STATE_VALUES[new])
        level = logging.WARNING if new == "open" else logging.INFO
        event(log, "breaker_" + new, level, feature=name, previous=old,
              meaning="remote calls go local" if new == "open" else "remote calls resume")

    return CircuitBreaker(feature, on_change=changed, **options)


def _routed(router: Router, method: MethodSpec):
    def call(*args: Any, **kwargs: Any) -> Any:
        return router.call(method, method.bind(args, kwargs))

    call.__name__ = method.name
    call.__doc__ = method.doc
    return call
