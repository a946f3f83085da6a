"""The rollback guard (shims/guard): when a breach counts (held in every bucket of the
window), when the guard may act (cooldown, a forward move since, a whole window in the
stage), and the guard at work on a real flag store and evidence table: one leader, one
rollback, audited, counted, logged; a refused move retried; switched per feature."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, update

from notes_app import Flaky, Side
from shims.evidence import histogram
from shims.evidence.model import BreakerFigures, CallRow, FeatureEvidence, Rows, SideFigures
from shims.evidence.reader import Evidence
from shims.evidence.store import SqlEvidenceStore
from shims.flags.model import AuditEntry, FeatureInfo, Flag
from shims.flags.store import SqlFlagStore, audit_table
from shims.gates.config import GuardSettings, Policy
from shims.gates.moves import StageMoves
from shims.guard import rules
from shims.guard.runner import LEASE_NAME, Guard
from shims.guard.switches import GuardSwitches
from shims.metrics import TurnoutMetrics
from shims.mirror import Lease, mirror_channels
from support import ManualClock

FEATURES = {"notes": FeatureInfo("notes", has_remote=True, owns_data=True),
            "search": FeatureInfo("search", has_remote=True)}
GUARD = GuardSettings(enabled=True, window=20, min_calls=10, max_error_rate=0.5,
                      max_p99_ms=1000.0, cooldown=60)
BUCKET = 5


# --- breaches ------------------------------------------------------------------------------

def figures(calls=20, errors=20, p99=50.0, open_share=None, window=BUCKET):
    remote = SideFigures("remote", calls=calls, errors=errors,
                         error_rate=errors / calls if calls else None,
                         p99_ms=p99 if calls else None)
    return FeatureEvidence("search", window, 0, window, local=SideFigures("local"),
                           remote=remote, breaker=BreakerFigures(open_share=open_share))


def test_an_error_rate_above_the_limit_in_every_bucket_is_a_breach_with_its_numbers():
    found = rules.breach(figures(80, 76, window=20), [figures(20, 19)] * 4, GUARD)
    assert found.limit == "error_rate"
    assert found.detail == ("remote failing in all 4 buckets of 20s; error rate 95% of 80 "
                            "calls")


def test_a_burst_that_does_not_hold_for_the_whole_window_is_no_breach():
    """The window's rate is far above the limit, but one bucket was healthy."""
    buckets = [figures(20, 20), figures(20, 20), figures(20, 0), figures(20, 20)]
    assert rules.breach(figures(80, 60, window=20), buckets, GUARD) is None
    quiet = [figures(20, 20), figures(0, 0), figures(20, 20), figures(20, 20)]  # no call: no proof
    assert rules.breach(figures(60, 60, window=20), quiet, GUARD) is None


def test_too_few_calls_prove_nothing():
    assert rules.breach(figures(8, 8, window=20), [figures(2, 2)] * 4, GUARD) is None


def test_a_p99_above_its_limit_throughout_is_a_breach_unless_switched_off():
    slow = [figures(20, 0, p99=1500.0)] * 4
    found = rules.breach(figures(80, 0, p99=1500.0, window=20), slow, GUARD)
    assert found.limit == "p99" and "p99 1500 ms" in found.detail
    no_latency = GuardSettings(**{**GUARD.__dict__, "max_p99_ms": 0.0})
    assert rules.breach(figures(80, 0, p99=1500.0, window=20), slow, no_latency) is None


def test_a_breaker_open_in_every_bucket_is_a_breach_even_without_calls():
    """With the breaker open, the service gets only trial calls: too few to count."""
    opened = [figures(0, 0, open_share=1.0)] * 4
    found = rules.breach(figures(0, 0, open_share=1.0, window=20), opened, GUARD)
    assert found.limit == "breaker_open" and "breaker open in 4" in found.detail
    closing = [*opened[:3], figures(3, 0, open_share=0.0)]
    assert rules.breach(figures(3, 0, open_share=0.75, window=20), closing, GUARD) is None
    ignored = GuardSettings(**{**GUARD.__dict__, "breaker_open": False})
    assert rules.breach(figures(0, 0, open_share=1.0, window=20), opened, ignored) is None


def test_errors_that_open_the_breaker_then_the_breaker_hold_a_breach_together():
    """An outage: calls fail until the breaker opens, then only trials reach the service."""
    outage = [figures(20, 20), figures(20, 20, open_share=0.5), figures(1, 1, open_share=1.0),
              figures(0, 0, open_share=1.0)]
    found = rules.breach(figures(41, 41, open_share=0.6, window=20), outage, GUARD)
    assert found.limit == "breaker_open+error_rate"
    assert "error rate 100% of 41 calls" in found.detail and "breaker open in 3" in found.detail
    few = [figures(2, 2), figures(1, 1, open_share=1.0), figures(0, 0, open_share=1.0),
           figures(0, 0, open_share=1.0)]
    assert rules.breach(figures(3, 3, open_share=0.7, window=20), few, GUARD) is None


# --- standing: hysteresis after acting ----------------------------------------------------

NOW = dt.datetime(2026, 5, 1, 12, 0, 0)


def entry(minutes_ago: float, actor: str, old: str, new: str) -> AuditEntry:
    return AuditEntry(id=0, at=NOW - dt.timedelta(minutes=minutes_ago), actor=actor,
                      feature="search", old=old, new=new)


def standing(history, now=NOW):
    return rules.standing(history, now=now, cooldown=300,
                          window_start=now - dt.timedelta(seconds=60))


def test_armed_once_the_feature_has_been_in_its_stage_a_whole_window():
    assert standing([entry(30, "ops", "canary 5%", "canary 25%")]).armed
    young = standing([entry(0.5, "ops", "canary 5%", "canary 25%")])
    assert not young.armed and "less than a whole window" in young.why
    assert standing([]).armed


def test_after_acting_it_cools_down_then_waits_for_a_forward_move():
    acted = entry(2, "turnout-guard (remote error rate 90%)", "canary 25%", "canary 5%")
    assert "cooling down" in standing([acted]).why
    later = NOW + dt.timedelta(minutes=10)
    waiting = standing([acted], now=later)
    assert not waiting.armed and "moved forward again" in waiting.why
    switched = entry(1, "ops", "guard off", "guard on")  # not a move
    back = entry(1, "ops", "canary 5%", "shadow")  # a move, but not forward
    assert not standing([switched, back, acted], now=later).armed
    forward = entry(1, "ops", "shadow", "canary 5%")
    assert standing([forward, back, acted], now=later).armed


# --- the guard at work ---------------------------------------------------------------------

@pytest.fixture
def clock():
    return ManualClock(time.time())  # the audit log keeps real times: start from now


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path, clock):
    """A flag store with the evidence beside it, on SQLite and on PostgreSQL."""
    url = (f"sqlite:///{tmp_path / 'flags.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    store = SqlFlagStore.from_url(url, FEATURES)
    store.open()
    table = SqlEvidenceStore(store.engine)  # the evidence database may be the store's
    evidence = Evidence(table, FEATURES, bucket_seconds=BUCKET, clock=clock)
    yield store, table, evidence
    store.engine.dispose()


def guard_on(world, clock, *, channels=None, holder="a"):
    store, _, evidence = world
    policy = Policy(guard=GUARD)
    metrics = TurnoutMetrics()
    moves = StageMoves(store, evidence, policy,
                       lambda name: channels if name == "notes" else None, wait_seconds=1)
    guard = Guard(store, evidence, moves, GuardSwitches(store, policy),
                  Lease(store.engine, LEASE_NAME, ttl=15, holder=holder, clock=clock),
                  metrics=metrics, tick=5, settle=0, clock=clock)
    return guard, metrics


def in_stage_for(store, seconds):
    """As if every change so far was made `seconds` ago (the audit log keeps real times)."""
    with store.engine.begin() as connection:
        for row in connection.execute(select(audit_table.c.id, audit_table.c.at)).all():
            connection.execute(update(audit_table).where(audit_table.c.id == row.id).values(
                at=row.at - dt.timedelta(seconds=seconds)))


def remote_failing(table, clock, feature="search", *, seconds=40, errors=True):
    """Buckets of remote calls for the last `seconds`, all failing (or all fine)."""
    end = int(clock() // BUCKET) * BUCKET
    counts = histogram.empty()
    counts[histogram.slot(0.05)] = 10
    table.add(Rows(calls=tuple(
        CallRow(start, feature, f"{feature}.find", "remote", 10, 10 if errors else 0, 0.5,
                tuple(counts)) for start in range(end - seconds, end + BUCKET, BUCKET))))


def rollbacks(metrics, feature="search"):
    return metrics.registry.get_sample_value("turnout_guard_rollbacks_total",
                                             {"feature": feature}) or 0


def test_a_breach_held_for_the_window_rolls_back_one_stage_once_audited(world, clock, caplog):
    store, table, _ = world
    store.set("search", "canary", 25, actor="ops")
    in_stage_for(store, 60)  # a whole window in the stage
    guard, metrics = guard_on(world, clock)
    remote_failing(table, clock)
    assert guard.tick() == ["search"]
    assert store.snapshot().flag("search") == Flag("search", "canary", 5)
    entry = store.history("search")[0]
    assert entry.actor == ("turnout-guard (remote failing in all 4 buckets of 20s; error rate "
                           "100% of 40 calls)")
    assert (entry.old, entry.new) == ("canary 25%", "canary 5%")
    assert rollbacks(metrics) == 1
    assert '"event": "guard_rolled_back"' in caplog.text
    for _ in range(3):  # the breach goes on: it does not act again
        clock.advance(30)
        remote_failing(table, clock)
        assert guard.tick() == []
    assert rollbacks(metrics) == 1 and store.snapshot().flag("search").percent == 5


def test_after_a_forward_move_and_the_cooldown_it_acts_again(world, clock):
    store, table, _ = world
    store.set("search", "canary", 25, actor="ops")
    in_stage_for(store, 60)
    guard, metrics = guard_on(world, clock)
    remote_failing(table, clock)
    assert guard.tick() == ["search"]
    store.set("search", "canary", 25, actor="ops")  # forward again, by someone
    clock.advance(30)
    remote_failing(table, clock)
    assert guard.tick() == []  # cooling down (60 s)
    clock.advance(40)
    remote_failing(table, clock)
    assert guard.tick() == ["search"]
    assert rollbacks(metrics) == 2


def test_a_healthy_remote_side_is_left_alone(world, clock):
    store, table, _ = world
    store.set("search", "live", actor="ops")
    in_stage_for(store, 60)
    guard, metrics = guard_on(world, clock)
    remote_failing(table, clock, errors=False)
    assert guard.tick() == [] and rollbacks(metrics) == 0
    assert store.snapshot().flag("search").mode == "live"


def test_one_guard_per_store_acts_whichever_worker_ticks(world, clock):
    store, table, _ = world
    store.set("search", "live", actor="ops")
    in_stage_for(store, 60)
    first, first_metrics = guard_on(world, clock, holder="worker-1")
    second, second_metrics = guard_on(world, clock, holder="worker-2")
    remote_failing(table, clock)
    assert first.tick() == ["search"]
    assert second.tick() == []  # not the leader
    assert first_metrics.registry.get_sample_value("turnout_guard_leader") == 1
    assert second_metrics.registry.get_sample_value("turnout_guard_leader") == 0
    assert [e.new for e in store.history("search")] == ["canary 50%", "live"]


def test_switched_off_or_killed_it_does_nothing(world, clock):
    store, table, _ = world
    store.set("search", "remote", actor="ops")
    in_stage_for(store, 60)
    guard, _ = guard_on(world, clock)
    GuardSwitches(store, Policy(guard=GUARD)).switch("search", False, actor="ops")
    remote_failing(table, clock)
    assert guard.tick() == []
    latest = store.history("search")[0]
    assert (latest.old, latest.new) == ("guard on", "guard off")
    GuardSwitches(store, Policy(guard=GUARD)).switch("search", True, actor="ops")
    store.kill(actor="ops")
    assert guard.tick() == []
    store.unkill(actor="ops")
    assert guard.tick() == ["search"]
    assert store.snapshot().flag("search").mode == "live"  # remote -> live: no rampdown


def test_a_rollback_the_stage_mover_refuses_is_counted_and_tried_again(world, clock, tmp_path,
                                                                       caplog):
    store, table, _ = world
    monolith, service = Side(tmp_path / "monolith.db"), Side(tmp_path / "service.db")
    flaky = Flaky(service.sync)
    channels = mirror_channels("notes", monolith.sync, flaky)
    store.set("notes", "live", actor="ops")
    in_stage_for(store, 60)
    guard, metrics = guard_on(world, clock, channels=channels)
    flaky.down = True  # the service's writes cannot come home before the monolith answers
    remote_failing(table, clock, "notes")
    assert guard.tick() == []
    assert metrics.registry.get_sample_value("turnout_guard_refusals_total",
                                             {"feature": "notes"}) == 1
    assert '"event": "guard_move_refused"' in caplog.text
    assert store.snapshot().flag("notes").mode == "live"  # never forced
    flaky.down = False
    clock.advance(5)
    remote_failing(table, clock, "notes")
    assert guard.tick() == ["notes"]
    assert store.snapshot().flag("notes") == Flag("notes", "canary", 50)
    monolith.close()
    service.close()
