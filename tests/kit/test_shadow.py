"""Shadow reads: the authoritative side answers, the other side runs alongside and is compared.

Timing tests use generous bounds that still separate "concurrent" from "one after the
other"; asynchronous results are awaited by polling with a deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import gevent
import pytest

from shims.contract import describe, read, write
from shims.errors import DeadlineExceeded, Forbidden, NotFound, TransportError
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo, Flag, FlagSnapshot
from shims.metrics import TurnoutMetrics
from shims.router import Router, Sides, make_breaker
from shims.shadow import Mismatch, ShadowRunner

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

    def get(self, user_id: int) -> Note:
        self.calls += 1
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
          ignore: frozenset[str] = frozenset({"created_at"}), sink: Any = None):
    local, remote = FakeNotes("local"), FakeNotes("remote")
    metrics = TurnoutMetrics()
    sink = Sink() if sink is None else sink
    router = Router(FeatureInfo(FEATURE), NOTES, Sides(local, remote),
                    flags=FlagCache(FlagSource(mode), refresh_interval=0),
                    breaker=make_breaker(FEATURE, metrics), metrics=metrics,
                    shadow=ShadowRunner(FEATURE, metrics, sink, timeout=timeout,
                                        max_in_flight=max_in_flight, ignore=ignore))
    return SimpleNamespace(router=router, local=local, remote=remote, metrics=metrics,
                           sink=sink, sides={"local": local, "remote": remote})


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


def test_primary_and_shadow_run_concurrently():
    t = build(timeout=1.0)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.local.delay = t.remote.delay = 0.1
    started = time.monotonic()
    t.router.get(user_id=7)
    answered = time.monotonic() - started
    wait_for_comparisons(t)
    compared = time.monotonic() - started
    assert 0.1 <= answered < 0.18
    assert compared < 0.18, f"one after the other would take 0.2 s, took {compared:.3f} s"


def test_a_slow_shadow_never_delays_the_answer():
    t = build(timeout=0.2)
    t.local.rows[7] = t.remote.rows[7] = note()
    t.local.delay = 0.05
    t.remote.delay = 2.0
    started = time.monotonic()
    assert t.router.get(user_id=7) == note()
    answered = time.monotonic() - started
    assert answered < 0.15, f"the answer waited for the shadow ({answered:.3f} s)"
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
