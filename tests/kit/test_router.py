"""The router: modes, kill switch, breaker, mirrored writes, and the flags that drive it.

Everything here runs against in-memory fakes: a small Notes contract with a local
and a remote implementation, fake data syncs for mirrored writes, and a fake flag
source behind a real FlagCache.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import gevent
import pytest

from shims.breaker import OPEN
from shims.contract import describe, read, write
from shims import trace
from shims.errors import DeadlineExceeded, NotFound, ServiceTimeout, TransportError
from shims.flags.cache import FlagCache
from shims.flags.model import MODES, FeatureInfo, Flag, FlagError, FlagSnapshot, validate_flag
from shims.metrics import TurnoutMetrics
from shims.router import Router, ServiceUnavailable, Sides, make_breaker
from shims.shadow import ShadowRecorder, ShadowRunner
from shims.sync import Applied, Backlog, RowChange, RowKey
from support import ManualClock

FEATURE = "notes"


# --- the fake contract and its two sides -------------------------------------------------

@dataclass(frozen=True)
class Note:
    id: int
    user_id: int
    text: str
    created_at: str


class Notes(Protocol):
    @read
    def get(self, user_id: int) -> Note: ...

    @read
    def count(self) -> int: ...

    @write
    def save(self, user_id: int, text: str) -> Note: ...


NOTES = describe(Notes, "notes")


class FakeNotes:
    """One side's in-memory notes; ids are minted from the side's own range."""

    def __init__(self, side: str, first_id: int):
        self.side = side
        self.rows: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.delay = 0.0
        self.fail: Exception | None = None
        self._next_id = first_id

    def _enter(self, method: str, **arguments: Any) -> None:
        self.calls.append((method, arguments))
        if self.delay:
            gevent.sleep(self.delay)
        if self.fail is not None:
            raise self.fail

    def called(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    def seed(self, user_id: int, text: str) -> None:
        self.rows[user_id] = {"id": self._mint(), "user_id": user_id, "text": text,
                              "created_at": f"{self.side}-clock"}

    def _mint(self) -> int:
        self._next_id += 1
        return self._next_id

    def get(self, user_id: int) -> Note:
        self._enter("get", user_id=user_id)
        if user_id not in self.rows:
            raise NotFound(f"no note for user {user_id}")
        return Note(**self.rows[user_id])

    def count(self) -> int:
        self._enter("count")
        return len(self.rows)

    def save(self, user_id: int, text: str) -> Note:
        self._enter("save", user_id=user_id, text=text)
        self.seed(user_id, text)
        return Note(**self.rows[user_id])


class FakeSync:
    """A side's data sync over its FakeNotes rows (every row at version 1: the router's
    tests are about who gets what; versions are tested in test_mirror.py)."""

    def __init__(self, notes: FakeNotes):
        self.notes = notes
        self.exported: list[list[RowKey]] = []
        self.applied: list[list[RowChange]] = []
        self.settled: list = []
        self.fail: Exception | None = None

    def export(self, keys: list[RowKey]) -> list[RowChange]:
        self.exported.append(keys)
        return [RowChange(key.entity, key.id, 1, dict(self.notes.rows[key.id])
                          if key.id in self.notes.rows else None) for key in keys]

    def apply(self, changes: list[RowChange]) -> Applied:
        if self.fail is not None:
            raise self.fail
        self.applied.append(changes)
        for change in changes:
            self.notes.rows.pop(change.id, None)
            if change.row is not None:
                self.notes.rows[change.id] = dict(change.row)
        return Applied(applied=len(changes), skipped=0)

    def settle(self, changes) -> int:
        self.settled.extend(changes)
        return len(changes)

    def pending(self, limit: int) -> list:
        return []

    def backlog(self) -> Backlog:
        return Backlog(0, 0.0)


class NotesMirror:
    def keys_for(self, method: str, arguments: dict[str, Any], result: Any) -> list[RowKey]:
        return [RowKey("note", arguments["user_id"])] if method == "notes.save" else []


class FakeFlagSource:
    def __init__(self, mode: str = "local", percent: float = 0.0, killed: bool = False):
        self.broken: Exception | None = None
        self.problems: tuple[tuple[str, str], ...] = ()
        self.reads = 0
        self._version = 0
        self.set(mode, percent, killed)

    def set(self, mode: str, percent: float = 0.0, killed: bool = False) -> None:
        self._version += 1
        self.killed = killed
        self.flags = {FEATURE: Flag(FEATURE, mode, percent)}

    def version(self) -> int:
        if self.broken is not None:
            raise self.broken
        return self._version

    def snapshot(self) -> FlagSnapshot:
        self.reads += 1
        return FlagSnapshot(version=self._version, killed=self.killed, flags=self.flags,
                            problems=self.problems)


class SpyShadow(ShadowRunner):
    """A real ShadowRunner that also counts how many shadows were started."""

    started = 0

    def start(self, *args: Any, **kwargs: Any):
        self.started += 1
        return super().start(*args, **kwargs)


def build(mode: str = "local", percent: float = 0.0, *, killed: bool = False,
          owns_data: bool = True, failure_threshold: int = 3, reset_timeout: float = 10.0,
          shadow_timeout: float = 1.0, silent_for: float = 5.0) -> SimpleNamespace:
    local, remote = FakeNotes("local", 1000), FakeNotes("remote", 5000)
    local_sync, remote_sync = FakeSync(local), FakeSync(remote)
    source = FakeFlagSource(mode, percent, killed)
    metrics = TurnoutMetrics()
    clock = ManualClock()
    breaker = make_breaker(FEATURE, metrics, failure_threshold=failure_threshold,
                           reset_timeout=reset_timeout, clock=clock)
    shadow = SpyShadow(FEATURE, metrics, timeout=shadow_timeout,
                       ignore=frozenset({"created_at"}))
    sides = (Sides(local, remote, local_sync, remote_sync) if owns_data
             else Sides(local, remote))
    router = Router(FeatureInfo(FEATURE, owns_data=owns_data), NOTES, sides,
                    flags=FlagCache(source, refresh_interval=0), breaker=breaker,
                    metrics=metrics, shadow=shadow,
                    mirror=NotesMirror() if owns_data else None, silent_for=silent_for)
    return SimpleNamespace(router=router, local=local, remote=remote, local_sync=local_sync,
                           remote_sync=remote_sync, source=source, metrics=metrics, clock=clock,
                           breaker=breaker, shadow=shadow)


def sample(metrics: TurnoutMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def comparisons(t: SimpleNamespace, result: str, method: str = "notes.get") -> float:
    return sample(t.metrics, "turnout_shadow_comparisons_total", feature=FEATURE, method=method,
                  result=result)


def all_comparisons(t: SimpleNamespace) -> float:
    return sum(comparisons(t, result) for result in
               ("match", "mismatch", "shadow_error", "shadow_timeout", "skipped_busy"))


def mirrors(t: SimpleNamespace, target: str, outcome: str) -> float:
    return sample(t.metrics, "turnout_mirror_writes_total", feature=FEATURE, target=target,
                  outcome=outcome)


def fallbacks(t: SimpleNamespace, reason: str, method: str = "notes.get") -> float:
    return sample(t.metrics, "turnout_fallbacks_total", feature=FEATURE, method=method,
                  reason=reason)


def wait_for(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.005)


def seed_both(t: SimpleNamespace, user_id: int = 7) -> None:
    t.local.seed(user_id, "from local")
    t.remote.seed(user_id, "from remote")


def sides_of(t):
    return {"local": t.local, "remote": t.remote}


def syncs_of(t):
    return {"local": t.local_sync, "remote": t.remote_sync}


# --- every mode routes to the right side ---------------------------------------------------

# (mode, percent) -> (answers, shadow side of a read, mirror target of a write)
TABLE = {
    ("local", 0): ("local", None, None),
    ("dualwrite", 0): ("local", None, "remote"),
    ("shadow", 0): ("local", "remote", "remote"),
    ("canary", 0): ("local", None, "remote"),
    ("canary", 100): ("remote", None, "local"),
    ("live", 0): ("remote", "local", "local"),
    ("rampdown", 0): ("remote", None, "local"),
    ("remote", 0): ("remote", None, None),
}
ROUTES = [pytest.param(mode, percent, *expected, id=f"{mode}-{percent}")
          for (mode, percent), expected in TABLE.items()]


def test_table_covers_every_mode():
    assert {mode for mode, _ in TABLE} == set(MODES)


@pytest.mark.parametrize(("mode", "percent", "answers", "shadow", "mirror"), ROUTES)
def test_reads_are_answered_by_the_authoritative_side(mode, percent, answers, shadow, mirror):
    t = build(mode, percent)
    seed_both(t)
    note = t.router.get(user_id=7)
    assert note.text == f"from {answers}"
    assert sides_of(t)[answers].called("get") == 1
    other = "remote" if answers == "local" else "local"
    if shadow is None:
        assert t.shadow.started == 0
        assert sides_of(t)[other].calls == []
    else:
        assert shadow == other
        wait_for(lambda: all_comparisons(t) == 1)
        assert sides_of(t)[shadow].called("get") == 1
    assert t.local_sync.applied == t.remote_sync.applied == []  # reads never mirror


@pytest.mark.parametrize(("mode", "percent", "answers", "shadow", "mirror"), ROUTES)
def test_writes_of_a_data_owning_feature(mode, percent, answers, shadow, mirror):
    t = build(mode, percent)
    note = t.router.save(user_id=7, text="hello")
    authoritative = sides_of(t)[answers]
    assert authoritative.rows[7]["id"] == note.id  # the answering side minted the id
    other = "remote" if answers == "local" else "local"
    # the contract write runs once, on the authoritative side only; never shadowed
    assert authoritative.calls == [("save", {"user_id": 7, "text": "hello"})]
    assert sides_of(t)[other].calls == []
    assert t.shadow.started == 0
    if mirror is None:
        assert 7 not in sides_of(t)[other].rows
        assert t.local_sync.applied == t.remote_sync.applied == []
        assert t.local_sync.exported == t.remote_sync.exported == []
    else:
        assert mirror == other
        # the mirror copies the authoritative row verbatim, id included
        assert sides_of(t)[mirror].rows[7] == authoritative.rows[7]
        assert syncs_of(t)[answers].exported == [[RowKey("note", 7)]]
        assert len(syncs_of(t)[mirror].applied) == 1
        assert syncs_of(t)[answers].applied == []
        assert mirrors(t, mirror, "ok") == 1


@pytest.mark.parametrize(("mode", "percent", "answers", "shadow", "mirror"), ROUTES)
def test_stateless_feature_writes_on_one_side_only(mode, percent, answers, shadow, mirror):
    t = build(mode, percent, owns_data=False)
    t.router.save(user_id=7, text="hello")
    assert sides_of(t)[answers].called("save") == 1
    assert t.local.called("save") + t.remote.called("save") == 1
    assert t.shadow.started == 0


def test_a_data_owning_feature_needs_a_mirror_and_both_syncs():
    local, remote = FakeNotes("local", 0), FakeNotes("remote", 0)
    metrics = TurnoutMetrics()
    with pytest.raises(ValueError, match="owns data"):
        Router(FeatureInfo(FEATURE, owns_data=True), NOTES, Sides(local, remote),
               flags=FlagCache(FakeFlagSource(), refresh_interval=0),
               breaker=make_breaker(FEATURE, metrics), metrics=metrics,
               shadow=ShadowRunner(FEATURE, metrics), mirror=NotesMirror())


def test_calls_without_an_actor_follow_the_flag():
    t = build("canary", 100)
    t.local.seed(1, "a")
    assert t.router.count() == 0  # 100%: even calls without a user go remote
    t.source.set("canary", 0)
    assert t.router.count() == 1


def test_canary_through_the_router_is_sticky_per_user():
    t = build("canary", 50)
    for user in range(1, 41):
        t.local.seed(user, "from local")
        t.remote.seed(user, "from remote")
    first = {user: t.router.get(user_id=user).text for user in range(1, 41)}
    assert set(first.values()) == {"from local", "from remote"}
    for _ in range(5):
        assert {user: t.router.get(user_id=user).text for user in range(1, 41)} == first


# --- kill switch ------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "percent"), list(TABLE))
def test_kill_switch_sends_everything_local(mode, percent):
    t = build(mode, percent, killed=True)
    seed_both(t)
    assert t.router.get(user_id=7).text == "from local"
    note = t.router.save(user_id=8, text="x")
    assert t.local.rows[8]["id"] == note.id
    assert t.remote.calls == []
    assert t.shadow.started == 0
    assert t.local_sync.exported == t.remote_sync.exported == []
    assert t.local_sync.applied == t.remote_sync.applied == []


def test_kill_switch_is_picked_up_on_the_next_call():
    t = build("remote")
    seed_both(t)
    assert t.router.get(user_id=7).text == "from remote"
    t.source.set("remote", killed=True)
    assert t.router.get(user_id=7).text == "from local"
    t.source.set("remote", killed=False)
    assert t.router.get(user_id=7).text == "from remote"


# --- the breaker, through the router ----------------------------------------------------

def open_breaker(t: SimpleNamespace) -> None:
    t.remote.fail = TransportError("connection refused")
    for _ in range(3):
        assert t.router.get(user_id=7).text == "from local"
    assert t.breaker.state == OPEN


def test_remote_read_failing_with_transport_error_falls_back_to_local():
    t = build("remote")
    seed_both(t)
    t.remote.fail = TransportError("read timed out")
    assert t.router.get(user_id=7).text == "from local"
    assert t.remote.called("get") == 1
    assert fallbacks(t, "transport_error") == 1


def test_a_contract_error_from_the_local_fallback_is_traced_as_the_fallback():
    """A 404 answered by the local fallback (a row its mirror never brought) must not be
    reported as the remote side's answer in X-Turnout-Route."""
    t = build("remote")
    t.remote.fail = TransportError("read timed out")
    trace.start()
    with pytest.raises(NotFound):
        t.router.get(user_id=7)
    assert trace.header_value() == "notes.get=local-fallback"
    t.remote.fail = None
    trace.start()
    with pytest.raises(NotFound):
        t.router.get(user_id=7)
    assert trace.header_value() == "notes.get=remote"


def test_a_call_cut_short_by_the_deadline_counts_only_once_the_service_is_silent():
    """Slow but answering (a graceful reload) keeps the breaker closed; answering nothing
    for `silent_for` (stopped behind an open socket) opens it, reads alone included."""
    t = build("remote", failure_threshold=1, silent_for=0.3)
    seed_both(t)
    assert t.router.get(user_id=7).text == "from remote"  # it answers
    t.remote.fail = DeadlineExceeded("did not answer within 0.8s, all the budget left",
                                     sent=True)
    assert t.router.get(user_id=7).text == "from local"
    assert t.breaker.state == "closed"  # answered 0.3 s ago at most: slow, not down
    time.sleep(0.35)
    assert t.router.get(user_id=7).text == "from local"
    assert t.breaker.state == OPEN  # silent for longer than its read timeout: down


def test_a_call_never_started_for_want_of_time_never_counts():
    t = build("remote", failure_threshold=1, silent_for=0.0)
    seed_both(t)
    t.remote.fail = DeadlineExceeded("not started: the request's time budget is spent")
    assert t.router.get(user_id=7).text == "from local"
    assert t.breaker.state == "closed"


def test_a_full_timeout_counts_only_once_the_service_is_silent():
    """The service's own read timeout run out: the same rule as the deadline (F3 saw the
    breaker open during a reload on a loaded machine while most calls were answered)."""
    t = build("remote", failure_threshold=1, silent_for=0.3)
    seed_both(t)
    assert t.router.get(user_id=7).text == "from remote"
    t.remote.fail = ServiceTimeout("did not answer within 5s")
    assert t.router.get(user_id=7).text == "from local"
    assert t.breaker.state == "closed"
    time.sleep(0.35)
    assert t.router.get(user_id=7).text == "from local"
    assert t.breaker.state == OPEN


def test_a_reset_or_refused_connection_counts_at_once():
    t = build("remote", failure_threshold=1)
    seed_both(t)
    t.remote.fail = TransportError("could not be reached: ProtocolError")
    assert t.router.get(user_id=7).text == "from local"
    assert t.breaker.state == OPEN


def test_consecutive_transport_errors_open_the_breaker(caplog):
    caplog.set_level(logging.INFO, logger="turnout")
    t = build("remote")
    seed_both(t)
    open_breaker(t)
    assert sample(t.metrics, "turnout_breaker_transitions_total", feature=FEATURE,
                  to="open") == 1
    assert sample(t.metrics, "turnout_breaker_state", feature=FEATURE) == 2
    assert any("breaker_open" in record.getMessage() for record in caplog.records)
    # while open: reads answered locally without touching the remote side
    for _ in range(5):
        assert t.router.get(user_id=7).text == "from local"
    assert t.remote.called("get") == 3
    assert fallbacks(t, "breaker_open") == 5


@pytest.mark.parametrize("mode", ["canary", "live", "rampdown", "remote"])
def test_writes_needing_the_remote_side_are_refused_on_both_sides_while_open(mode):
    t = build(mode, 100 if mode == "canary" else 0)
    seed_both(t)
    open_breaker(t)
    t.clock.advance(4)
    before = (dict(t.local.rows), dict(t.remote.rows))
    with pytest.raises(ServiceUnavailable) as refused:
        t.router.save(user_id=7, text="lost?")
    assert refused.value.retry_after >= 1
    assert refused.value.retry_after == 6
    assert t.local.called("save") == t.remote.called("save") == 0
    assert (t.local.rows, t.remote.rows) == before
    assert t.local_sync.applied == t.remote_sync.applied == []


def test_half_open_trial_success_closes_the_breaker():
    t = build("remote")
    seed_both(t)
    open_breaker(t)
    t.remote.fail = None
    t.clock.advance(9)
    assert t.router.get(user_id=7).text == "from local"  # still open
    t.clock.advance(1)
    assert t.router.get(user_id=7).text == "from remote"  # the trial
    assert t.breaker.state == "closed"
    assert t.router.get(user_id=7).text == "from remote"
    assert sample(t.metrics, "turnout_breaker_transitions_total", feature=FEATURE,
                  to="closed") == 1


def test_half_open_trial_failure_reopens_the_breaker():
    t = build("remote")
    seed_both(t)
    open_breaker(t)
    t.clock.advance(10)
    assert t.router.get(user_id=7).text == "from local"  # trial failed, local answered
    assert t.remote.called("get") == 4
    assert t.breaker.state == OPEN
    assert t.router.get(user_id=7).text == "from local"
    assert t.remote.called("get") == 4  # no further calls until the next reset timeout
    assert sample(t.metrics, "turnout_breaker_transitions_total", feature=FEATURE,
                  to="open") == 2


def test_only_one_trial_runs_while_half_open():
    t = build("remote")
    seed_both(t)
    open_breaker(t)
    t.remote.fail = None
    t.remote.delay = 0.1
    t.clock.advance(10)
    calls = [gevent.spawn(t.router.get, user_id=7) for _ in range(5)]
    gevent.joinall(calls, timeout=2, raise_error=True)
    texts = sorted(call.value.text for call in calls)
    assert texts == ["from local"] * 4 + ["from remote"]
    assert t.remote.called("get") == 4  # 3 failures, then exactly one trial
    assert t.breaker.state == "closed"


def test_an_interrupted_half_open_trial_does_not_wedge_the_breaker():
    t = build("remote")
    seed_both(t)
    open_breaker(t)
    t.remote.fail = None
    t.remote.delay = 0.5
    t.clock.advance(10)
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):  # the caller gives up
        t.router.get(user_id=7)
    t.remote.delay = 0
    assert t.router.get(user_id=7).text == "from local"  # the lost trial still counts
    t.clock.advance(10)
    assert t.router.get(user_id=7).text == "from remote"
    assert t.breaker.state == "closed"


def test_contract_errors_from_the_remote_side_are_not_failures():
    t = build("remote")
    t.local.seed(404, "only local has it")
    for _ in range(10):
        with pytest.raises(NotFound):
            t.router.get(user_id=404)
    assert t.breaker.state == "closed"
    assert t.remote.called("get") == 10
    assert fallbacks(t, "transport_error") == 0


def test_contract_error_during_half_open_trial_closes_the_breaker():
    t = build("remote")
    seed_both(t)
    open_breaker(t)
    t.remote.fail = NotFound("no such note")
    t.clock.advance(10)
    with pytest.raises(NotFound):
        t.router.get(user_id=7)
    assert t.breaker.state == "closed"  # it answered: the service is up


def test_remote_write_transport_error_is_refused_and_never_retried():
    t = build("remote")
    t.remote.fail = TransportError("read timed out")
    with pytest.raises(ServiceUnavailable) as refused:
        t.router.save(user_id=7, text="once")
    assert refused.value.retry_after >= 1
    assert t.remote.called("save") == 1
    assert t.local.called("save") == 0
    assert t.local.rows == {}


@pytest.mark.parametrize("mode", ["live", "rampdown"])
def test_failed_remote_write_is_not_mirrored(mode):
    t = build(mode)
    t.remote.fail = TransportError("boom")
    with pytest.raises(ServiceUnavailable):
        t.router.save(user_id=7, text="x")
    assert t.local.rows == {}
    assert t.local_sync.applied == t.remote_sync.exported == []


def test_non_transport_bug_on_the_remote_side_is_raised_not_masked():
    t = build("remote")
    seed_both(t)
    t.remote.fail = RuntimeError("bug in the client")
    with pytest.raises(RuntimeError):
        t.router.get(user_id=7)


def test_shadow_read_is_not_sent_to_a_remote_whose_breaker_is_open_and_is_counted():
    t = build("shadow")
    seed_both(t)
    for _ in range(3):
        t.breaker.record_failure()
    assert t.router.get(user_id=7).text == "from local"
    assert t.shadow.started == 0
    assert t.remote.calls == []
    assert comparisons(t, "skipped_breaker_open") == 1


def test_a_shadow_skipped_by_the_breaker_reaches_the_shadow_listener():
    """A test harness hears of the shadows the router did not run, not only of those run."""
    recorder = ShadowRecorder()
    t = build("shadow")
    t.shadow.add_listener(recorder)
    seed_both(t)
    for _ in range(3):
        t.breaker.record_failure()
    t.router.get(user_id=7)
    assert t.shadow.drain(1.0) == 0
    assert [(o.method, o.result) for o in recorder.outcomes] == [
        ("notes.get", "skipped_breaker_open")]
    assert recorder.problems() == []


@pytest.mark.parametrize("owns_data", [True, False])
def test_shadowing_resumes_after_an_outage(owns_data):
    """A feature whose only remote calls are shadows: the half-open breaker lets one shadow
    through as its trial, and its success closes the breaker (issue 8: it stayed half-open)."""
    t = build("shadow", owns_data=owns_data)
    seed_both(t)
    for _ in range(3):
        t.breaker.record_failure()
    t.router.get(user_id=7)
    t.clock.advance(10)  # the reset timeout: half-open
    t.router.get(user_id=7)
    wait_for(lambda: comparisons(t, "mismatch") == 1)
    assert t.breaker.state == "closed"
    t.router.get(user_id=7)
    wait_for(lambda: comparisons(t, "mismatch") == 2)
    assert t.shadow.started == 2


# --- mirrored writes --------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "target"), [("dualwrite", "remote"), ("shadow", "remote"),
                                              ("live", "local"), ("rampdown", "local")])
def test_a_failing_mirror_never_fails_the_call(mode, target, caplog):
    t = build(mode)
    syncs_of(t)[target].fail = RuntimeError("disk full")
    note = t.router.save(user_id=7, text="kept")
    assert note.text == "kept"
    assert 7 not in sides_of(t)[target].rows
    assert mirrors(t, target, "deferred") == 1
    assert mirrors(t, target, "ok") == 0
    # Not settled: the change stays pending in the source's outbox for the applier.
    t.router.channels[target].flush_settled()
    assert syncs_of(t)[mode_answers(mode)].settled == []
    assert any("mirror_write_deferred" in record.getMessage() for record in caplog.records)


def mode_answers(mode: str) -> str:
    return "local" if mode in ("dualwrite", "shadow") else "remote"


def test_a_mirror_that_lands_is_settled_in_the_source_outbox():
    t = build("dualwrite")
    t.router.save(user_id=7, text="x")
    t.router.save(user_id=8, text="y")
    assert t.local_sync.settled == []  # settled in one batch, by the feature's applier
    assert t.router.channels["remote"].flush_settled() == 2
    assert [(c.entity, c.id) for c in t.local_sync.settled] == [("note", 7), ("note", 8)]


def test_failing_mirrors_to_the_remote_open_its_breaker_and_are_then_deferred():
    t = build("dualwrite")
    t.remote_sync.fail = TransportError("connection refused")
    for user in range(1, 4):
        t.router.save(user_id=user, text="x")
    assert mirrors(t, "remote", "deferred") == 3
    assert t.breaker.state == OPEN
    t.router.save(user_id=4, text="still written locally")
    assert t.local.rows[4]["text"] == "still written locally"
    assert mirrors(t, "remote", "deferred_breaker_open") == 1
    assert mirrors(t, "remote", "deferred") == 3


def test_mirror_recovers_after_the_breaker_closes():
    t = build("dualwrite")
    t.remote_sync.fail = TransportError("connection refused")
    for user in range(1, 4):
        t.router.save(user_id=user, text="x")
    t.remote_sync.fail = None
    t.clock.advance(10)
    t.router.save(user_id=5, text="y")
    assert t.remote.rows[5] == t.local.rows[5]
    assert t.breaker.state == "closed"


# --- flags ------------------------------------------------------------------------------

FEATURES = {FEATURE: FeatureInfo(FEATURE), "legacy": FeatureInfo("legacy", has_remote=False)}


@pytest.mark.parametrize(("feature", "mode", "percent", "field"), [
    ("nope", "local", None, "feature"),
    (FEATURE, "sideways", None, "mode"),
    (FEATURE, "canary", None, "percent"),
    (FEATURE, "canary", "", "percent"),
    (FEATURE, "live", 30, "percent"),
    (FEATURE, "local", 5, "percent"),
    (FEATURE, "canary", -1, "percent"),
    (FEATURE, "canary", 100.5, "percent"),
    (FEATURE, "canary", math.nan, "percent"),
    (FEATURE, "canary", "nan", "percent"),
    (FEATURE, "canary", math.inf, "percent"),
    (FEATURE, "canary", True, "percent"),
    (FEATURE, "canary", "thirty", "percent"),
    (FEATURE, "canary", [30], "percent"),
    ("legacy", "shadow", None, "mode"),
    ("legacy", "remote", None, "mode"),
])
def test_bad_flag_values_are_refused_naming_the_field(feature, mode, percent, field):
    with pytest.raises(FlagError) as refused:
        validate_flag(FEATURES, feature, mode, percent)
    assert refused.value.field == field
    assert refused.value.code == "invalid_flag"


@pytest.mark.parametrize(("feature", "mode", "percent", "expected"), [
    (FEATURE, "canary", 30, Flag(FEATURE, "canary", 30.0)),
    (FEATURE, "canary", "12.5", Flag(FEATURE, "canary", 12.5)),
    (FEATURE, "canary", 0, Flag(FEATURE, "canary", 0.0)),
    (FEATURE, "canary", 100, Flag(FEATURE, "canary", 100.0)),
    (FEATURE, "live", None, Flag(FEATURE, "live")),
    ("legacy", "local", None, Flag("legacy", "local")),
])
def test_good_flag_values_are_accepted(feature, mode, percent, expected):
    assert validate_flag(FEATURES, feature, mode, percent) == expected


def store_complaints(caplog) -> int:
    return sum("flag_store_unreadable" in record.getMessage() for record in caplog.records)


def test_unreadable_store_serves_local_before_any_good_read(caplog):
    source = FakeFlagSource("remote")
    source.broken = ConnectionError("database is locked")
    cache = FlagCache(source, refresh_interval=0)
    assert cache.flag(FEATURE).mode == "local"
    assert not cache.snapshot().killed
    assert not cache.healthy
    assert store_complaints(caplog) == 1


def test_unreadable_store_keeps_the_last_good_snapshot_and_complains_rarely(caplog):
    clock = ManualClock()
    source = FakeFlagSource("live")
    cache = FlagCache(source, refresh_interval=0, clock=clock)
    assert cache.flag(FEATURE).mode == "live"
    source.broken = OSError("disk gone")
    for _ in range(99):  # 9.8 s of calls after the first complaint
        assert cache.flag(FEATURE).mode == "live"
        clock.advance(0.1)
    assert store_complaints(caplog) == 1
    clock.advance(0.25)
    cache.snapshot()
    assert store_complaints(caplog) == 2
    source.broken = None
    source.set("rampdown")
    clock.advance(0.1)
    assert cache.flag(FEATURE).mode == "rampdown"
    assert cache.healthy


def test_router_keeps_routing_when_the_flag_store_breaks():
    t = build("remote")
    seed_both(t)
    assert t.router.get(user_id=7).text == "from remote"
    t.source.broken = RuntimeError("no such table")
    assert t.router.get(user_id=7).text == "from remote"


def test_corrupt_rows_keep_the_last_good_flag_for_those_features(caplog):
    source = FakeFlagSource("live")
    cache = FlagCache(source, refresh_interval=0)
    assert cache.flag(FEATURE).mode == "live"
    source.set("local")
    source.flags = {"other": Flag("other", "remote")}  # the notes row could not be parsed
    source.problems = ((FEATURE, "unknown mode 'sidways'"),)
    snapshot = cache.snapshot()
    assert snapshot.flag(FEATURE).mode == "live"
    assert snapshot.flag("other").mode == "remote"
    assert any("flag_row_corrupt" in record.getMessage() for record in caplog.records)


def test_corrupt_row_before_any_good_read_is_local():
    source = FakeFlagSource("live")
    source.flags = {}
    source.problems = ((FEATURE, "percent is not a number"),)
    assert FlagCache(source, refresh_interval=0).flag(FEATURE).mode == "local"


def test_a_change_is_picked_up_once_the_refresh_interval_has_passed_and_not_before():
    clock = ManualClock()
    source = FakeFlagSource("local")
    cache = FlagCache(source, refresh_interval=0.25, clock=clock)
    assert cache.flag(FEATURE).mode == "local"
    source.set("remote")
    clock.advance(0.2)
    assert cache.flag(FEATURE).mode == "local"
    clock.advance(0.04)
    assert cache.flag(FEATURE).mode == "local"
    clock.advance(0.01)
    assert cache.flag(FEATURE).mode == "remote"


def test_an_unchanged_version_does_not_reread_the_flags():
    source = FakeFlagSource("live")
    cache = FlagCache(source, refresh_interval=0)
    for _ in range(20):
        cache.snapshot()
    assert source.reads == 1
    source.set("remote")
    cache.snapshot()
    assert source.reads == 2


def test_router_follows_a_flag_change_on_the_next_call():
    t = build("local")
    seed_both(t)
    assert t.router.get(user_id=7).text == "from local"
    t.source.set("rampdown")
    assert t.router.get(user_id=7).text == "from remote"
    assert sample(t.metrics, "turnout_flag_version") == 2
