"""The circuit breaker's state machine, and make_breaker's metrics and logs."""

from __future__ import annotations

import logging

import pytest

from shims.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from shims.metrics import TurnoutMetrics
from shims.router import make_breaker
from support import ManualClock


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def changes():
    return []


@pytest.fixture
def breaker(clock, changes):
    return CircuitBreaker("notes", failure_threshold=3, reset_timeout=10, clock=clock,
                          on_change=lambda *change: changes.append(change))


def open_it(breaker):
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == OPEN


def test_starts_closed_and_lets_calls_through(breaker):
    assert breaker.state == CLOSED
    assert all(breaker.allow() for _ in range(100))
    assert breaker.retry_after() == 0


def test_threshold_consecutive_failures_open_it(breaker, changes):
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN
    assert not breaker.allow()
    assert changes == [("notes", CLOSED, OPEN)]


def test_a_success_resets_the_failure_count(breaker):
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == CLOSED


def test_retry_after_counts_down_while_open(breaker, clock):
    open_it(breaker)
    assert breaker.retry_after() == pytest.approx(10)
    clock.advance(4)
    assert breaker.retry_after() == pytest.approx(6)
    assert not breaker.allow()


def test_after_reset_timeout_exactly_one_trial_is_allowed(breaker, clock, changes):
    open_it(breaker)
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state == HALF_OPEN
    assert breaker.retry_after() == 0
    assert breaker.allow()
    assert not any(breaker.allow() for _ in range(10)), "only one trial at a time"
    assert changes[-1] == ("notes", OPEN, HALF_OPEN)


def test_trial_success_closes(breaker, clock, changes):
    open_it(breaker)
    clock.advance(10)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED
    assert all(breaker.allow() for _ in range(10))
    assert [new for _, _, new in changes] == [OPEN, HALF_OPEN, CLOSED]


def test_trial_failure_reopens_for_a_full_reset_timeout(breaker, clock, changes):
    open_it(breaker)
    clock.advance(15)
    assert breaker.allow()
    breaker.record_failure()  # a single failure is enough in half-open
    assert breaker.state == OPEN
    assert breaker.retry_after() == pytest.approx(10)
    assert not breaker.allow()
    clock.advance(10)
    assert breaker.allow()
    assert [new for _, _, new in changes] == [OPEN, HALF_OPEN, OPEN, HALF_OPEN]


def test_reopened_breaker_allows_a_new_trial_after_the_timeout(breaker, clock):
    open_it(breaker)
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow(), "the trial slot must be free again after reopening"
    assert not breaker.allow()


@pytest.mark.parametrize(("threshold", "timeout"), [(0, 5), (3, 0), (3, -1)])
def test_refuses_nonsense_settings(threshold, timeout):
    with pytest.raises(ValueError):
        CircuitBreaker("notes", failure_threshold=threshold, reset_timeout=timeout)


def transitions(metrics, to):
    value = metrics.registry.get_sample_value("turnout_breaker_transitions_total",
                                              {"feature": "notes", "to": to})
    return value or 0


def state_gauge(metrics):
    return metrics.registry.get_sample_value("turnout_breaker_state", {"feature": "notes"})


def test_make_breaker_counts_and_logs_every_transition(clock, caplog):
    caplog.set_level(logging.INFO, logger="turnout")
    metrics = TurnoutMetrics()
    breaker = make_breaker("notes", metrics, failure_threshold=2, reset_timeout=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert transitions(metrics, "open") == 1
    assert state_gauge(metrics) == 2
    opened = [r for r in caplog.records if "breaker_open" in r.getMessage()]
    assert len(opened) == 1
    assert opened[0].levelno == logging.WARNING
    assert '"feature": "notes"' in opened[0].getMessage()

    clock.advance(5)
    assert breaker.allow()
    assert transitions(metrics, "half_open") == 1
    assert state_gauge(metrics) == 1
    breaker.record_success()
    assert transitions(metrics, "closed") == 1
    assert state_gauge(metrics) == 0
    assert any("breaker_closed" in r.getMessage() for r in caplog.records)


def test_a_trial_that_never_reports_is_presumed_lost_after_the_reset_timeout(breaker, clock):
    open_it(breaker)
    clock.advance(10)
    assert breaker.allow()  # this trial's caller vanishes without reporting
    clock.advance(9)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow(), "a lost trial must not keep the breaker half-open for ever"
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED
