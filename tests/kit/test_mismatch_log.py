"""SqlMismatchLog: what it records, per-feature retention of the newest rows, and the
per-process rate limit (with an injected clock), on SQLite and PostgreSQL."""

import datetime as dt
import sqlite3
import time

import gevent
import pytest

from shims.mismatches import SqlMismatchLog
from shims.shadow import Mismatch
from shims.sql import make_engine
from support import ManualClock


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'flags.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url, pool_size=2)
    yield engine
    engine.dispose()


def make_log(engine, **options):
    log = SqlMismatchLog(engine, **options)
    log.create_schema()
    return log


def mismatch(n=0, feature="runs", method="runs.get_run"):
    return Mismatch(feature=feature, method=method, primary_side="local",
                    primary={"result": {"id": n, "name": "Tempo"}},
                    shadow={"result": {"id": n, "name": "tempo"}},
                    differences=("result.name",))


def test_record_and_recent(engine):
    log = make_log(engine, clock=ManualClock(100.0))
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)
    log.record(Mismatch(feature="runs", method="runs.list_runs", primary_side="remote",
                        primary={"result": [{"id": 1, "start_date": "2026-05-17T07:30:00"}]},
                        shadow={"error": "not_found"},
                        differences=("result", "error")))
    [record] = log.recent()
    assert record.feature == "runs"
    assert record.method == "runs.list_runs"
    assert record.primary_side == "remote"
    assert record.differences == ["result", "error"]
    assert record.primary == {"result": [{"id": 1, "start_date": "2026-05-17T07:30:00"}]}
    assert record.shadow == {"error": "not_found"}
    assert record.at.tzinfo is None
    assert before <= record.at <= before + dt.timedelta(seconds=5)
    assert isinstance(record.id, int)


def test_values_that_are_not_json_are_kept_as_text(engine):
    log = make_log(engine, clock=ManualClock(100.0))
    when = dt.datetime(2026, 5, 17, 7, 30)
    log.record(Mismatch(feature="runs", method="runs.get_run", primary_side="local",
                        primary={"result": when}, shadow={"result": None},
                        differences=("result",)))
    assert log.recent()[0].primary == {"result": "2026-05-17 07:30:00"}


def test_recent_is_newest_first_filtered_and_limited(engine):
    clock = ManualClock(100.0)
    log = make_log(engine, clock=clock)
    for n in range(6):
        log.record(mismatch(n, feature="runs" if n % 2 == 0 else "reports"))
        clock.now += 1
    assert [r.primary["result"]["id"] for r in log.recent()] == [5, 4, 3, 2, 1, 0]
    assert [r.primary["result"]["id"] for r in log.recent("runs")] == [4, 2, 0]
    assert [r.primary["result"]["id"] for r in log.recent("reports", limit=2)] == [5, 3]
    assert [r.primary["result"]["id"] for r in log.recent(limit=1)] == [5]
    assert log.recent("races") == []


def test_retention_keeps_the_newest_per_feature(engine):
    clock = ManualClock(100.0)
    log = make_log(engine, keep=3, clock=clock)
    for n in range(2):
        log.record(mismatch(100 + n, feature="reports"))
        clock.now += 1
    for n in range(10):
        log.record(mismatch(n, feature="runs"))
        clock.now += 1
        assert len(log.recent("runs")) == min(n + 1, 3)
    assert [r.primary["result"]["id"] for r in log.recent("runs")] == [9, 8, 7]
    # Another feature's rows are untouched by runs' flood.
    assert [r.primary["result"]["id"] for r in log.recent("reports")] == [101, 100]
    for n in range(4):
        log.record(mismatch(200 + n, feature="reports"))
        clock.now += 1
    assert [r.primary["result"]["id"] for r in log.recent("reports")] == [203, 202, 201]
    assert [r.primary["result"]["id"] for r in log.recent("runs")] == [9, 8, 7]
    assert len(log.recent(limit=100)) == 6


def test_keep_one(engine):
    clock = ManualClock(100.0)
    log = make_log(engine, keep=1, clock=clock)
    for n in range(3):
        log.record(mismatch(n))
        clock.now += 1
    assert [r.primary["result"]["id"] for r in log.recent()] == [2]


def test_rate_limit_per_process(engine):
    clock = ManualClock(100.0)
    log = make_log(engine, max_per_second=2, clock=clock)  # at most one per 0.5 s
    log.record(mismatch(1))
    clock.now += 0.125
    log.record(mismatch(2))  # dropped: too soon
    clock.now += 0.25
    log.record(mismatch(3))  # dropped: 0.375 s after the last recorded one
    clock.now += 0.125
    log.record(mismatch(4))  # 0.5 s: recorded
    log.record(mismatch(5, feature="reports"))  # the limit is per process, not per feature
    clock.now += 10
    log.record(mismatch(6, feature="reports"))
    assert [r.primary["result"]["id"] for r in log.recent()] == [6, 4, 1]


def test_a_burst_records_one_per_interval(engine):
    clock = ManualClock(100.0)
    log = make_log(engine, max_per_second=20, clock=clock)
    for _ in range(1000):  # 1000 mismatches over one second
        log.record(mismatch())
        clock.now += 0.001
    assert len(log.recent(limit=1000)) in (20, 21)


def test_two_processes_each_have_their_own_limit(engine):
    clock = ManualClock(100.0)
    first = make_log(engine, max_per_second=1, clock=clock)
    second = make_log(engine, max_per_second=1, clock=clock)  # create_schema again: harmless
    first.record(mismatch(1))
    second.record(mismatch(2))
    second.flush()  # its writer greenlet's work: a test that never yields does it itself
    first.record(mismatch(3))  # this process already recorded one this second
    assert sorted(r.primary["result"]["id"] for r in first.recent()) == [1, 2]


# --- off the serving path: queued, written by one greenlet when the loop is idle ----------

def rows_in(engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("select count(*) from turnout_mismatches").scalar()


def test_record_queues_and_the_writer_writes_when_the_loop_is_idle(engine):
    clock = ManualClock(100.0)
    log = make_log(engine, clock=clock)
    for n in range(3):
        log.record(mismatch(n))
        clock.now += 1
    assert rows_in(engine) == 0  # nothing written in the caller (a shadow on the loop)
    deadline = time.monotonic() + 2
    while rows_in(engine) < 3:
        assert time.monotonic() < deadline, "the writer greenlet wrote nothing"
        gevent.sleep(0.01)
    assert [r.primary["result"]["id"] for r in log.recent()] == [2, 1, 0]


def test_a_locked_sqlite_database_drops_the_batch_after_the_short_wait(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'flags.db'}", pool_size=2)
    log = make_log(engine, clock=ManualClock(100.0), busy_timeout=0.05)
    holder = sqlite3.connect(tmp_path / "flags.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        log.record(mismatch(1))
        started = time.monotonic()
        assert log.flush() == 0
        assert time.monotonic() - started < 1.0  # not the engine's 15 s busy timeout
        assert log.dropped == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with engine.connect() as connection:  # the connection's usual wait is back
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
    assert log.recent() == []
    engine.dispose()


def test_a_full_queue_drops_and_counts(engine):
    clock = ManualClock(100.0)
    log = make_log(engine, clock=clock, max_pending=2)
    for n in range(4):
        log.record(mismatch(n))
        clock.now += 1
    assert log.dropped == 2
    assert [r.primary["result"]["id"] for r in log.recent()] == [1, 0]
