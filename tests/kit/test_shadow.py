"""Shadow reads: the authoritative side answers, the other side runs alongside and is compared.

Timing tests use generous bounds that still separate "concurrent" from "one after the
other"; asynchronous results are awaited by polling with a deadline.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import gevent
import gevent.monkey
import pytest
from flask import Flask, current_app, g, has_app_context, jsonify
from flask.globals import app_ctx
from gevent.pywsgi import WSGIServer
from sqlalchemy import create_engine, text
from sqlalchemy.orm import scoped_session, sessionmaker

from shims.contract import describe, read, write
from shims.evidence.figures import shadow_figures
from shims.evidence.recorder import EvidenceRecorder
from shims.errors import DeadlineExceeded, Forbidden, NotFound, TransportError
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo, Flag, FlagSnapshot
from shims.metrics import TurnoutMetrics
from shims.router import Router, Sides, make_breaker
from shims.shadow import Mismatch, ShadowOutcome, ShadowRecorder, ShadowRunner

FEATURE = "notes"
RESULTS = ("match", "mismatch", "shadow_error", "shadow_timeout", "skipped_busy")


@dataclass(frozen=True)
class Note:
    id: int
    user_id: int
    text: str
    created_at: str


class Notes(Protocol):
    @read
    def get(self, user_id: int) -> Note: ...

    @write
    def save(self, user_id: int, text: str) -> Note: ...


NOTES = describe(Notes, "notes")


class FakeNotes:
    def __init__(self, side: str):
        self.side = side
        self.rows: dict[int, Note] = {}
        self.calls = 0
        self.delay = 0.0
        self.fail: Exception | None = None
        self.probe: Callable[[], None] | None = None

    def get(self, user_id: int) -> Note:
        self.calls += 1
        if self.probe is not None:  # a test looks at the context the call runs in
            self.probe()
        if self.delay:
            gevent.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        if user_id not in self.rows:
            raise NotFound(f"no note for user {user_id}")
        return self.rows[user_id]

    def save(self, user_id: int, text: str) -> Note:
        raise AssertionError("writes are never shadowed")


class FlagSource:
    def __init__(self, mode: str):
        self.flags = {FEATURE: Flag(FEATURE, mode)}

    def version(self) -> int:
        return 1

    def snapshot(self) -> FlagSnapshot:
        return FlagSnapshot(version=1, flags=self.flags)


class Sink:
    def __init__(self):
        self.mismatches: list[Mismatch] = []

    def record(self, mismatch: Mismatch) -> None:
        self.mismatches.append(mismatch)


def build(mode: str = "shadow", *, timeout: float = 1.0, max_in_flight: int = 100,
          ignore: frozenset[str] = frozenset({"created_at"}), sink: Any = None,
          local: Any = None, **options: Any):
    """`options` go to the ShadowRunner (context, listener, error_log_interval)."""
    local, remote = local or FakeNotes("local"), FakeNotes("remote")
    metrics = TurnoutMetrics()
    sink = Sink() if sink is None else sink
    runner = ShadowRunner(FEATURE, metrics, sink, timeout=timeout, max_in_flight=max_in_flight,
                          ignore=ignore, **options)
    router = Router(FeatureInfo(FEATURE), NOTES, Sides(local, remote),
                    flags=FlagCache(FlagSource(mode), refresh_interval=0),
                    breaker=make_breaker(FEATURE, metrics), metrics=metrics, shadow=runner)
    return SimpleNamespace(router=router, local=local, remote=remote, metrics=metrics,
                           sink=sink, runner=runner, sides={"local": local, "remote": remote})


def counted(t, result: str) -> float:
    return t.metrics.registry.get_sample_value(
        "turnout_shadow_comparisons_total",
        {"feature": FEATURE, "method": "notes.get", "result": result}) or 0.0


def counts(t) -> dict[str, float]:
    return {result: counted(t, result) for result in RESULTS if counted(t, result)}


def wait_for(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.005)


def wait_for_comparisons(t, total: float = 1) -> dict[str, float]:
    wait_for(lambda: sum(counts(t).values()) >= total)
    return counts(t)


def note(side: str = "local", text: str = "hello", created_at: str = "2026-05-01T07:00:00"):
    return Note(id=7, user_id=7, text=text, created_at=created_at)


# mode -> (primary side, shadow side)
SHADOWED = {"shadow": ("local", "remote"), "live": ("remote", "local")}


@pytest.mark.parametrize("mode", list(SHADOWED))
def test_matching_answers_are_counted_as_a_match(mode):
    t = build(mode)
    t.local.rows[7] = t.remote.rows[7] = note()
    assert t.router.get(user_id=7) == note()
    assert wait_for_comparisons(t) == {"match": 1}
    assert t.local.calls == t.remote.calls == 1
    assert t.sink.mismatches == []


@pytest.mark.parametrize("mode", list(SHADOWED))
def test_the_answer_always_comes_from_the_authoritative_side(mode):
    primary, shadow = SHADOWED[mode]
    t = build(mode)
    t.sides[primary].rows[7] = note(text="authoritative")
    t.sides[shadow].rows[7] = note(text="shadow")
    for _ in range(5):
        assert t.router.get(user_id=7).text == "authoritative"
    assert wait_for_comparisons(t, 5) == {"mismatch": 5}


@pytest.mark.parametrize("mode", list(SHADOWED))
def test_mismatch_reaches_the_sink_with_both_values_and_the_paths(mode):
    primary, shadow = SHADOWED[mode]
    t = build(mode)
    t.sides[primary].rows[7] = note(text="right")
    t.sides[shadow].rows[7] = Note(id=8, user_id=7, text="wrong", created_at="whenever")
    t.router.get(user_id=7)
    wait_for(lambda: t.sink.mismatches)
    [mismatch] = t.sink.mismatches
    assert mismatch.feature == FEATURE
    assert mismatch.method == "notes.get"
    assert mismatch.primary_side == primary
    assert mismatch.primary["result"]["text"] == "right"
    assert mismatch.shadow["result"]["text"] == "wrong"
    assert set(mismatch.differences) == {"$.result.id", "$.result.text"}  # not created_at
    assert counted(t, "mismatch") == 1


def test_ignored_fields_do_not_count_as_a_mismatch():
    t = build()
    t.local.rows[7] = note(created_at="2026-05-01T07:00:00")
    t.remote.rows[7] = note(created_at="2026-05-01T07:00:00.123456+00:00")
    t.router.get(user_id=7)
    assert wait_for_comparisons(t) == {"match": 1}


def test_without_ignore_the_same_difference_is_a_mismatch():
    t = build(ignore=frozenset())
    t.local.rows[7] = note(created_at="a")
    t.remote.rows[7] = note(created_at="b")
    t.router.get(user_id=7)
    wait_for(lambda: t.sink.mismatches)
    assert t.sink.mismatches[0].differences == ("$.result.created_at",)


def test_both_sides_raising_the_same_contract_error_is_a_match():
    t = build()
    with pytest.raises(NotFound):
        t.router.get(user_id=404)
    assert wait_for_comparisons(t) == {"match": 1}


def test_different_contract_outcomes_are_a_mismatch():
    t = build()
    t.remote.rows[7] = note()  # only the shadow side has it
    with pytest.raises(NotFound):
        t.router.get(user_id=7)
    wait_for(lambda: t.sink.mismatches)
    mismatch = t.sink.mismatches[0]
    assert mismatch.primary == {"error": "not_found"}
    assert mismatch.shadow["result"]["id"] == 7

    t.local.rows[8] = note()
    t.remote.fail = Forbidden("not yours")
    assert t.router.get(user_id=8) == note()
    wait_for(lambda: len(t.sink.mismatches) == 2)
    assert t.sink.mismatches[1].shadow == {"error": "forbidden"}


@pytest.mark.parametrize("error", [TransportError("connection refused"),
                                   RuntimeError("bug on the shadow side"),
                                   ValueError("garbage")])
def test_shadow_side_raising_never_changes_or_fails_the_answer(error):
    t = build()
    t.local.rows[7] = note(text="answer")
    t.remote.fail = error
    for _ in range(3):
        assert t.router.get(user_id=7).text == "answer"
    assert wait_for_comparisons(t, 3) == {"shadow_error": 3}
    assert t.sink.mismatches == []


def test_shadow_transport_errors_trip_the_breaker_and_stop_the_shadow():
    t = build()
    t.local.rows[7] = note()
    t.remote.fail = TransportError("down")
    for _ in range(5):  # make_breaker's default threshold
        t.router.get(user_id=7)
        wait_for(lambda: t.remote.calls == t.local.calls)
    t.router.get(user_id=7)
    assert t.local.calls == 6
    assert t.remote.calls == 5  # no shadow sent to an open breaker


def test_a_shadow_cut_short_by_its_budget_does_not_trip_the_breaker():
    """The shadow's remote read ran out of its time budget: the service, which answered
    moments ago, is slower than we wait (a graceful reload), not down, and must not stop
    the writes that need it."""
    t = build()
    t.local.rows[7] = note()
    t.remote.fail = DeadlineExceeded("did not answer within 1s, all the budget left", sent=True)
    for _ in range(6):
        t.router.get(user_id=7)
        wait_for(lambda: t.remote.calls == t.local.calls)
    assert t.remote.calls == 6  # every shadow still sent: the breaker stayed closed


def test_the_shadow_starts_only_after_the_primary_answered():
    """Nothing of the shadow runs while the primary is being served, even when the primary
    yields (a remote primary waiting for its answer): the loop is the request's."""
    t = build("live", timeout=1.0)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.remote.delay = 0.1  # the primary in live mode, yielding to the hub meanwhile
    t.router.get(user_id=7)
    assert t.local.calls == 0, "the shadow ran while the primary was being served"
    assert wait_for_comparisons(t) == {"match": 1}
    assert t.local.calls == 1


def test_a_slow_shadow_never_delays_the_answer():
    t = build(timeout=0.2)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.local.delay = 0.05
    t.remote.delay = 2.0
    started = time.monotonic()
    assert t.router.get(user_id=7) == note()
    # Answered before the shadow's outcome (its 0.2 s timeout) was known: not timed, so a
    # loaded host cannot fail it.
    assert counts(t) == {}, "the answer waited for the shadow"
    assert wait_for_comparisons(t) == {"shadow_timeout": 1}
    timed_out = time.monotonic() - started
    assert 0.18 <= timed_out < 1.0
    assert t.sink.mismatches == []


def test_a_slow_primary_is_still_compared_with_a_fast_shadow():
    t = build(timeout=0.2)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.local.delay = 0.3  # slower than the shadow timeout, which only bounds the shadow
    assert t.router.get(user_id=7) == note()
    assert wait_for_comparisons(t) == {"match": 1}


def test_in_flight_cap_skips_shadows_when_full():
    t = build(timeout=0.3, max_in_flight=2)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.remote.delay = 2.0
    for _ in range(5):
        assert t.router.get(user_id=7) == note()
    assert counted(t, "skipped_busy") == 3  # decided at once, before any shadow ran
    wait_for(lambda: t.remote.calls == 2)
    assert wait_for_comparisons(t, 5) == {"skipped_busy": 3, "shadow_timeout": 2}
    # once the slow shadows gave up, their slots are free again
    t.remote.delay = 0
    t.router.get(user_id=7)
    wait_for(lambda: counted(t, "match") == 1)


def test_a_failing_sink_breaks_nothing(caplog):
    class BrokenSink:
        def record(self, mismatch):
            raise RuntimeError("mismatch table is gone")

    t = build(sink=BrokenSink())
    t.local.rows[7] = note(text="a")
    t.remote.rows[7] = note(text="b")
    assert t.router.get(user_id=7).text == "a"
    wait_for(lambda: any("mismatch_not_recorded" in r.getMessage() for r in caplog.records))
    assert counted(t, "mismatch") == 1
    assert any("shadow_mismatch" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["local", "dualwrite", "rampdown", "remote"])
def test_modes_without_a_shadow_call_one_side(mode):
    t = build(mode)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.router.get(user_id=7)
    assert t.local.calls + t.remote.calls == 1


def test_an_interrupted_primary_frees_its_shadow_slot():
    t = build(timeout=1.0, max_in_flight=1)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.local.delay = 0.5
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):  # the caller's own deadline
        t.router.get(user_id=7)
    t.local.delay = 0

    def read_and_compare():
        t.router.get(user_id=7)
        return counted(t, "match") >= 1

    wait_for(read_and_compare, timeout=1.0)  # the one slot is free again
    assert counted(t, "mismatch") == 0  # the interrupted call had nothing to compare


# --- the app context and the hooks' contexts ----------------------------------------------

class SqlNotes:
    """A local side written as a Flask-SQLAlchemy app writes it: `session` is one SQLAlchemy
    session per app context (Flask-SQLAlchemy's own scope function), removed when that
    context is torn down; outside an app context it raises "Working outside of application
    context", as `db.session` does."""

    def __init__(self, app: Flask, url: str):
        self.engine = create_engine(url)
        self.session = scoped_session(sessionmaker(self.engine),
                                      scopefunc=lambda: id(app_ctx._get_current_object()))
        self.removed = 0
        self.seen_marker: list[Any] = []
        app.teardown_appcontext(self._remove)
        with self.engine.begin() as connection:
            connection.execute(text("create table notes (id integer, user_id integer, "
                                    "text varchar, created_at varchar)"))

    def _remove(self, _error: BaseException | None) -> None:
        self.removed += 1
        self.session.remove()

    def add(self, row: Note) -> None:
        with self.engine.begin() as connection:
            connection.execute(text("insert into notes values (:id, :user_id, :text, "
                                    ":created_at)"), vars(row))

    def get(self, user_id: int) -> Note:
        self.seen_marker.append(g.get("marker"))  # the request's `g`, if it leaked in
        found = self.session.execute(text("select * from notes where user_id = :user_id"),
                                     {"user_id": user_id}).one_or_none()
        if found is None:
            raise NotFound(f"no note for user {user_id}")
        return Note(*found)

    def save(self, user_id: int, text: str) -> Note:
        raise AssertionError("writes are never shadowed")


def serve_notes(app: Flask, router: Router) -> Flask:
    @app.get("/notes/<int:user_id>")
    def get_note(user_id: int):
        g.marker = "the request's own"
        return jsonify(vars(router.get(user_id=user_id)))
    return app


def test_a_shadow_side_using_a_session_scoped_to_the_app_context_works(tmp_path):
    """The adopting team's Flask-SQLAlchemy failure: the local side shadows (live mode) and
    needs an app context. It runs after the request has ended here (a test client never
    yields to the hub), in a fresh context of the same app: its own session, removed after."""
    app = Flask("notes_app")
    notes = SqlNotes(app, f"sqlite:///{tmp_path / 'notes.db'}")
    t = build("live", local=notes)
    serve_notes(app, t.router)
    notes.add(note())
    t.remote.rows[7] = note()

    assert app.test_client().get("/notes/7").json["text"] == "hello"
    assert counts(t) == {}  # nothing yielded to the hub yet: the shadow has not run
    assert notes.removed == 1  # the request's context is gone already

    assert t.runner.drain(2.0) == 0
    assert counts(t) == {"match": 1}
    assert notes.seen_marker == [None]  # a fresh context, not the request's
    assert notes.removed == 2  # the shadow's context was torn down, its session removed


def test_without_an_app_context_the_shadow_runs_without_one():
    """CLIs and plain tests have no app context: nothing is pushed, nothing fails."""
    seen: list[bool] = []
    t = build("live")
    t.local.probe = lambda: seen.append(has_app_context())
    t.local.rows[7] = t.remote.rows[7] = note()
    t.router.get(user_id=7)
    assert t.runner.drain(2.0) == 0
    assert seen == [False]
    assert counts(t) == {"match": 1}


tenant: ContextVar[str | None] = ContextVar("tenant", default=None)


@contextmanager
def bound_tenant(value: str | None, entered: list[str], name: str) -> Iterator[None]:
    entered.append(name)
    token = tenant.set(value)
    try:
        yield
    finally:
        tenant.reset(token)
        entered.append("/" + name)


def test_hook_contexts_carry_request_state_into_the_shadow():
    """Each factory runs when the shadow starts, in the request's greenlet (so it reads the
    request's state); its context manager is entered in the shadow greenlet, in list order,
    around the call only."""
    entered: list[str] = []
    factory_ran_in: list[Any] = []

    def outer():
        factory_ran_in.append(gevent.getcurrent())
        return bound_tenant(tenant.get(), entered, "outer")

    def inner():
        return bound_tenant(tenant.get().upper(), entered, "inner")

    t = build("live", context=[outer, inner])
    seen: list[Any] = []
    t.local.probe = lambda: seen.append((tenant.get(), list(entered)))
    t.local.rows[7] = t.remote.rows[7] = note()
    token = tenant.set("acme")
    try:
        t.router.get(user_id=7)
    finally:
        tenant.reset(token)
    assert t.runner.drain(2.0) == 0
    assert factory_ran_in == [gevent.getcurrent()]
    assert seen == [("ACME", ["outer", "inner"])]  # the shadow greenlet has no "acme" of its own
    assert entered == ["outer", "inner", "/inner", "/outer"]
    assert counts(t) == {"match": 1}


def test_hook_contexts_are_entered_inside_the_app_context():
    seen: list[str] = []

    @contextmanager
    def app_name() -> Iterator[None]:
        seen.append(current_app.name)
        yield

    t = build("live", context=app_name)  # a single factory, not in a list
    t.local.rows[7] = t.remote.rows[7] = note()
    app = serve_notes(Flask("notes_app"), t.router)
    assert app.test_client().get("/notes/7").status_code == 200
    assert t.runner.drain(2.0) == 0
    assert seen == ["notes_app"]
    assert counts(t) == {"match": 1}


def test_a_failing_context_factory_skips_the_shadow_and_is_a_logged_shadow_error(caplog):
    def broken():
        raise LookupError("no tenant on this request")

    t = build(context=broken)
    t.local.rows[7] = t.remote.rows[7] = note(text="answer")
    assert t.router.get(user_id=7).text == "answer"
    assert t.runner.drain(2.0) == 0
    assert t.remote.calls == 0
    assert counts(t) == {"shadow_error": 1}
    [logged] = shadow_errors(caplog)
    assert logged["error_type"] == "LookupError"


def test_a_context_failing_on_entry_is_a_shadow_error():
    @contextmanager
    def refuses() -> Iterator[None]:
        raise RuntimeError("tenant database unreachable")
        yield

    t = build(context=refuses)
    t.local.rows[7] = t.remote.rows[7] = note(text="answer")
    assert t.router.get(user_id=7).text == "answer"
    assert t.runner.drain(2.0) == 0
    assert t.remote.calls == 0
    assert counts(t) == {"shadow_error": 1}


# --- the exception behind a shadow_error is logged ---------------------------------------

def shadow_errors(caplog) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) | {"exc_info": r.exc_info} for r in caplog.records
            if r.name == "turnout.shadow" and '"event": "shadow_error"' in r.getMessage()]


def test_every_shadow_error_is_logged_with_its_exception(caplog):
    caplog.set_level(logging.WARNING, logger="turnout.shadow")
    t = build()
    t.local.rows[7] = note()
    t.remote.fail = RuntimeError("bug on the shadow side")
    t.router.get(user_id=7)
    assert t.runner.drain(2.0) == 0
    [logged] = shadow_errors(caplog)
    assert logged["feature"] == FEATURE
    assert logged["method"] == "notes.get"
    assert logged["error_type"] == "RuntimeError"
    assert logged["error"] == "bug on the shadow side"
    _type, error, traceback = logged["exc_info"]
    assert error is t.remote.fail and traceback is not None
    assert [r.levelno for r in caplog.records if "shadow_error" in r.getMessage()] == [
        logging.WARNING]


def test_a_repeated_error_is_logged_each_time_with_its_traceback_once_per_interval(caplog):
    """A broken shadow side fails on every read: a line each time, one traceback a minute
    per method and exception type."""
    caplog.set_level(logging.WARNING, logger="turnout.shadow")
    t = build()
    t.local.rows[7] = note()
    t.remote.fail = RuntimeError("bug")
    for _ in range(3):
        t.router.get(user_id=7)
    t.runner.drain(2.0)
    t.remote.fail = TransportError("connection refused")  # another type: its own traceback
    t.router.get(user_id=7)
    t.runner.drain(2.0)
    logged = shadow_errors(caplog)
    assert [(e["error_type"], e["exc_info"] is not None) for e in logged] == [
        ("RuntimeError", True), ("RuntimeError", False), ("RuntimeError", False),
        ("TransportError", True)]
    assert logged[1]["traceback"].startswith("omitted")


def test_with_no_interval_every_error_carries_its_traceback(caplog):
    caplog.set_level(logging.WARNING, logger="turnout.shadow")
    t = build(error_log_interval=0)
    t.local.rows[7] = note()
    t.remote.fail = RuntimeError("bug")
    for _ in range(2):
        t.router.get(user_id=7)
    t.runner.drain(2.0)
    assert [e["exc_info"] is not None for e in shadow_errors(caplog)] == [True, True]


# --- drain and listeners: what a test harness uses ---------------------------------------

def test_drain_makes_the_comparisons_of_a_test_that_never_yields():
    t = build()
    t.local.rows[7] = t.remote.rows[7] = note()
    for _ in range(3):
        t.router.get(user_id=7)  # in-memory sides: nothing here yields to the gevent hub
    assert counts(t) == {}
    assert t.runner.drain(2.0) == 0
    assert counts(t) == {"match": 3}
    assert t.runner.drain(0) == 0  # nothing left in flight


def test_a_synchronous_runner_compares_before_the_call_returns_what_the_primary_read():
    """A test harness's mode: a write right after a read can no longer leak into the
    read's shadow (the shadow runs before the read returns, not at the next drain)."""
    t = build()
    t.runner.synchronous = True
    t.local.rows[7] = t.remote.rows[7] = note()
    t.router.get(user_id=7)
    assert counts(t) == {"match": 1}  # no drain, no yield in the test
    t.local.rows[7] = t.remote.rows[7] = note(text="changed after the read")
    assert t.runner.drain(0) == 0 and counts(t) == {"match": 1}


def test_drain_returns_how_many_are_still_running_at_its_deadline():
    t = build(timeout=5.0)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.remote.delay = 0.5
    t.router.get(user_id=7)
    started = time.monotonic()
    assert t.runner.drain(0.05) == 1
    assert time.monotonic() - started < 0.4
    assert t.runner.drain(2.0) == 0
    assert counts(t) == {"match": 1}


def test_drain_with_nothing_started_returns_at_once():
    started = time.monotonic()
    assert build().runner.drain(5.0) == 0
    assert time.monotonic() - started < 0.1


def test_a_mismatch_reaches_the_listener_with_its_details():
    recorder = ShadowRecorder()
    t = build(listener=recorder)
    t.local.rows[7] = note(text="right")
    t.remote.rows[7] = note(text="wrong")
    t.router.get(user_id=7)
    t.runner.drain(2.0)
    [outcome] = recorder.problems()
    assert outcome.result == "mismatch"
    assert outcome.mismatch == t.sink.mismatches[0]
    assert outcome.mismatch.differences == ("$.result.text",)
    assert str(outcome) == "notes notes.get: mismatch at $.result.text"


def test_every_counted_result_reaches_the_listener():
    """match, shadow_error (with its exception), shadow_timeout and skipped_busy: each
    outcome the metric counts, and only the failing ones are problems."""
    recorder = ShadowRecorder()
    t = build(timeout=0.1, max_in_flight=1, listener=recorder)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.router.get(user_id=7)
    t.runner.drain(2.0)

    t.remote.fail = ValueError("garbage")
    t.router.get(user_id=7)
    t.runner.drain(2.0)

    t.remote.fail, t.remote.delay = None, 1.0
    t.router.get(user_id=7)
    t.router.get(user_id=7)  # the only slot is taken
    assert t.runner.drain(2.0) == 0

    assert [o.result for o in recorder.outcomes] == [
        "match", "shadow_error", "skipped_busy", "shadow_timeout"]
    assert all(o.feature == FEATURE and o.method == "notes.get" for o in recorder.outcomes)
    error = recorder.outcomes[1]
    assert str(error) == "notes notes.get: shadow_error: ValueError: garbage"
    assert isinstance(recorder.outcomes[3].error, gevent.Timeout)
    assert [o.result for o in recorder.problems()] == ["shadow_error", "shadow_timeout"]
    assert counts(t) == {"match": 1, "shadow_error": 1, "skipped_busy": 1, "shadow_timeout": 1}
    recorder.clear()
    assert recorder.outcomes == []


def test_listeners_can_be_added_and_detached():
    first, second = ShadowRecorder(), ShadowRecorder()
    t = build(listener=first)
    detach = t.runner.add_listener(second)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.router.get(user_id=7)
    t.runner.drain(2.0)
    detach()
    detach()  # twice is harmless
    t.router.get(user_id=7)
    t.runner.drain(2.0)
    assert len(first.outcomes) == 2
    assert len(second.outcomes) == 1


def test_a_failing_listener_breaks_nothing(caplog):
    def broken(outcome: ShadowOutcome) -> None:
        raise RuntimeError("harness bug")

    recorder = ShadowRecorder()
    t = build(listener=broken, max_in_flight=1)
    t.runner.add_listener(recorder)
    t.local.rows[7] = t.remote.rows[7] = note()
    assert t.router.get(user_id=7) == note()
    assert t.router.get(user_id=7) == note()  # skipped_busy: told in the request's greenlet
    assert t.runner.drain(2.0) == 0
    assert [o.result for o in recorder.outcomes] == ["skipped_busy", "match"]
    assert any("shadow_listener_failed" in r.getMessage() for r in caplog.records)


# --- rechecks: a mismatch asked again, transient or persistent ---------------------------

def rechecked(t, result: str) -> float:
    return t.metrics.registry.get_sample_value(
        "turnout_shadow_rechecks_total",
        {"feature": FEATURE, "method": "notes.get", "result": result}) or 0.0


def test_a_mismatch_gone_when_asked_again_is_transient():
    """The shadow side had not received a write's mirror yet: a moment later it has."""
    heard = ShadowRecorder()
    t = build(recheck_after=0.05, listener=heard)
    t.local.rows[7] = note(text="written")
    t.remote.rows[7] = note(text="before the mirror")
    t.router.get(user_id=7)
    wait_for(lambda: t.sink.mismatches)
    t.remote.rows[7] = note(text="written")  # the mirror lands
    wait_for(lambda: rechecked(t, "transient") == 1)
    assert counted(t, "mismatch") == 1  # the comparison itself still counts
    assert [o.result for o in heard.outcomes] == ["mismatch", "recheck_transient"]
    assert t.local.calls == t.remote.calls == 2  # both sides asked again, once


def test_a_mismatch_still_there_when_asked_again_is_persistent():
    t = build(recheck_after=0.05)
    t.local.rows[7] = note(text="right")
    t.remote.rows[7] = note(text="wrong")
    t.router.get(user_id=7)
    wait_for(lambda: rechecked(t, "persistent") == 1)
    assert rechecked(t, "transient") == 0


def test_a_recheck_that_fails_is_neither_transient_nor_persistent():
    t = build(recheck_after=0.05)
    t.local.rows[7] = note(text="right")
    t.remote.rows[7] = note(text="wrong")
    t.router.get(user_id=7)
    wait_for(lambda: t.sink.mismatches)
    t.remote.fail = TransportError("down")
    wait_for(lambda: rechecked(t, "failed") == 1)


def test_without_a_recheck_delay_a_mismatch_is_not_asked_again():
    t = build()
    t.local.rows[7] = note(text="right")
    t.remote.rows[7] = note(text="wrong")
    t.router.get(user_id=7)
    wait_for(lambda: t.sink.mismatches)
    assert t.runner.drain(1.0) == 0
    assert t.local.calls == t.remote.calls == 1


# --- off the serving path: the loop is the requests' first --------------------------------

BLOCKING_SLEEP = gevent.monkey.get_original("time", "sleep")  # holds the whole loop


class BlockingSink(Sink):
    """A mismatch write that holds the loop, as a SQLite write does."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.started_at: list[float] = []

    def record(self, mismatch: Mismatch) -> None:
        self.started_at.append(time.monotonic())
        BLOCKING_SLEEP(self.seconds)
        super().record(mismatch)


def served(router: Router) -> WSGIServer:
    app = Flask("shadowed")

    @app.get("/notes/<int:user_id>")
    def get_note(user_id: int):
        return jsonify(vars(router.get(user_id=user_id)))

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    return server


def get_over_http(server: WSGIServer, path: str) -> tuple[float, bytes]:
    """When the whole response had arrived, and its body."""
    with socket.create_connection(("127.0.0.1", server.server_port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return time.monotonic(), received


def test_the_response_is_written_before_a_slow_comparison_and_mismatch_write_run():
    """A shadow whose comparison ends in a mismatch write that holds the loop for 0.3 s:
    the client has the whole answer before that write starts."""
    t = build(sink=BlockingSink(0.3))
    t.local.rows[7] = note(text="right")
    t.remote.rows[7] = note(text="wrong")
    server = served(t.router)
    try:
        answered_at, response = get_over_http(server, "/notes/7")
        assert b'"text":"right"' in response.replace(b" ", b"")
        wait_for(lambda: t.sink.mismatches)
    finally:
        server.stop()
    assert answered_at < t.sink.started_at[0]


def test_requests_waiting_on_the_loop_go_before_a_shadow_comparison():
    """Five requests at once: every answer is written before the first shadow's slow
    mismatch write, which would otherwise hold the later ones 0.3 s each."""
    t = build(sink=BlockingSink(0.3))
    t.local.rows[7] = note(text="right")
    t.remote.rows[7] = note(text="wrong")
    server = served(t.router)
    try:
        clients = [gevent.spawn(get_over_http, server, "/notes/7") for _ in range(5)]
        gevent.joinall(clients, timeout=5)
        wait_for(lambda: t.sink.mismatches)
    finally:
        server.stop()
    assert max(c.value[0] for c in clients) < t.sink.started_at[0]


def keep_the_loop_busy(seconds: float) -> gevent.Greenlet:
    """A greenlet that always has a callback pending, as a saturated worker does."""
    def spin() -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            gevent.sleep(0)
    return gevent.spawn(spin)


def test_a_shadow_is_dropped_and_counted_when_the_loop_stays_busy():
    evidence = EvidenceRecorder()
    t = build(idle_wait=0.05, listener=evidence.shadow)
    t.local.rows[7] = t.remote.rows[7] = note()
    busy = keep_the_loop_busy(0.3)
    assert t.router.get(user_id=7) == note()
    assert t.runner.drain(2.0) == 0
    busy.join()
    assert counts(t) == {"skipped_busy": 1}
    assert t.remote.calls == 0  # dropped before its call: no work done for nothing
    assert shadow_figures(evidence.take().counts).skipped == 1  # the dashboard's figure


def test_a_shadow_answering_into_a_busy_loop_is_dropped_before_it_compares():
    t = build(idle_wait=0.05)
    t.local.rows[7] = note(text="right")
    t.remote.rows[7] = note(text="wrong")
    t.remote.delay = 0.05
    t.router.get(user_id=7)
    gevent.sleep(0.01)  # the shadow call is on its way
    busy = keep_the_loop_busy(0.3)
    assert t.runner.drain(2.0) == 0
    busy.join()
    assert t.remote.calls == 1
    assert counts(t) == {"skipped_busy": 1}
    assert t.sink.mismatches == []


def test_under_a_steady_load_every_shadow_still_compares():
    """200 requests at 400/s, each primary taking 1 ms of the loop: every one compared."""
    t = build(timeout=1.0)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.remote.delay = 0.02

    def serve() -> None:
        BLOCKING_SLEEP(0.001)  # the primary's own work, holding the loop
        t.router.get(user_id=7)

    requests = []
    for _ in range(200):
        requests.append(gevent.spawn(serve))
        gevent.sleep(0.0025)
    gevent.joinall(requests)
    assert t.runner.drain(5.0) == 0
    assert counts(t) == {"match": 200}



def test_shadows_waiting_for_an_idle_loop_pass_one_per_idle_moment():
    """Three shadows parked while the loop is busy do not all run in the first idle moment:
    a request arriving then would wait behind all three."""
    t = build(idle_wait=2.0)
    t.local.rows[7] = t.remote.rows[7] = note()
    busy = keep_the_loop_busy(0.2)
    for _ in range(3):
        t.router.get(user_id=7)
    busy.join()
    passed_at: list[int] = []
    iterations = {"n": 0}
    check = gevent.get_hub().loop.check()  # called once per loop iteration, after its poll
    check.start(lambda: iterations.__setitem__("n", iterations["n"] + 1))
    t.remote.probe = lambda: passed_at.append(iterations["n"])
    try:
        assert t.runner.drain(2.0) == 0
    finally:
        check.stop()
    assert counts(t) == {"match": 3}
    assert len(set(passed_at)) == 3, f"shadows ran in the same loop iteration: {passed_at}"
