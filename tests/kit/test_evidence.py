"""The evidence (shims/evidence): latency histograms and their quantiles, one worker's
buckets in memory, the shared table that adds every worker's buckets up (SQLite and
PostgreSQL), the figures merged over a window, and a flush that fails without failing
anything."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from shims.breaker import CircuitBreaker
from shims.evidence import histogram
from shims.evidence.config import EvidenceConfig
from shims.evidence.flusher import EvidenceFlusher
from shims.evidence.model import CallRow, CountRow, Rows
from shims.evidence.reader import Evidence
from shims.evidence.recorder import EvidenceRecorder
from shims.evidence.store import SqlEvidenceStore, evidence_engine, evidence_url
from shims.metrics import TurnoutMetrics
from shims.settings import ConfigError
from shims.shadow import ShadowOutcome
from shims.sql import make_engine

T0 = 1_800_000_000  # a bucket boundary for 10 s buckets
BUCKET = 10


class Clock:
    def __init__(self, now: float = T0 + 0.5):
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- histogram ---------------------------------------------------------------------------

def test_a_duration_lands_in_the_first_bucket_whose_bound_holds_it():
    assert histogram.slot(0.0004) == 0  # 0.4 ms <= 1 ms
    assert histogram.slot(0.001) == 0  # the bound is inclusive
    assert histogram.slot(0.0011) == 1
    assert histogram.slot(0.25) == histogram.BOUNDS_MS.index(300)
    assert histogram.slot(60.0) == histogram.SLOTS - 1  # slower than every bound


def test_quantiles_interpolate_within_the_bucket_they_fall_in():
    counts = histogram.empty()
    counts[histogram.slot(0.004)] = 50  # (3, 5] ms
    counts[histogram.slot(0.09)] = 50  # (75, 100] ms
    assert histogram.quantile(counts, 0.5) == pytest.approx(5.0)
    assert histogram.quantile(counts, 0.99) == pytest.approx(75 + 25 * 49 / 50)
    assert histogram.quantile(histogram.empty(), 0.99) is None
    slow = histogram.empty()
    slow[-1] = 3
    assert histogram.quantile(slow, 0.5) == histogram.BOUNDS_MS[-1]  # "at least 10 s"


def test_merged_histograms_give_the_quantile_of_all_calls_not_an_average_of_quantiles():
    fast, slow = histogram.empty(), histogram.empty()
    fast[histogram.slot(0.001)] = 99
    slow[histogram.slot(2.0)] = 1
    merged = histogram.merge(histogram.merge(histogram.empty(), fast), slow)
    assert histogram.quantile(merged, 0.5) <= 1.0
    assert histogram.quantile(merged, 1.0) == pytest.approx(2000.0)


# --- one worker's recorder -------------------------------------------------------------

def test_the_recorder_counts_per_bucket_and_hands_everything_over_once():
    clock = Clock()
    recorder = EvidenceRecorder(BUCKET, clock=clock)
    recorder.call("runs", "runs.get", "remote", "ok", 0.004)
    recorder.call("runs", "runs.get", "remote", "transport_error", 1.0)
    recorder.call("runs", "runs.get", "remote", "not_found", 0.003)  # an answer, not an error
    clock.now += BUCKET
    recorder.call("runs", "runs.get", "remote", "ok", 0.002)
    recorder.fallback("runs", "runs.get", "breaker_open")
    recorder.mirror_backlog("runs", "local", 7, 2.5)
    recorder.mirror_backlog("runs", "local", 3, 1.0)  # a gauge keeps the highest

    rows = recorder.take()
    calls = {row.bucket: row for row in rows.calls}
    assert (calls[T0].calls, calls[T0].errors) == (3, 1)
    assert calls[T0].seconds == pytest.approx(1.007)
    assert sum(calls[T0].histogram) == 3
    assert (calls[T0 + BUCKET].calls, calls[T0 + BUCKET].errors) == (1, 0)
    counts = {row.name: row for row in rows.counts}
    assert counts["fallback.breaker_open"].count == 1
    assert (counts["backlog.local"].peak, counts["lag.local"].peak) == (7, 2.5)
    assert not recorder.take()  # handed over: nothing twice


def test_rows_given_back_after_a_failed_flush_are_counted_again_but_old_ones_dropped():
    clock = Clock()
    recorder = EvidenceRecorder(BUCKET, clock=clock)
    recorder.call("runs", "runs.get", "local", "ok", 0.001)
    recorder.count("runs", "shadow.match", method="runs.get")
    failed = recorder.take()
    recorder.call("runs", "runs.get", "local", "ok", 0.001)
    recorder.give_back(failed, keep_from=T0)
    again = recorder.take()
    assert again.calls[0].calls == 2 and again.counts[0].count == 1
    recorder.give_back(again, keep_from=T0 + BUCKET)  # older than the table keeps
    assert not recorder.take()


def test_a_recorder_nobody_flushes_keeps_no_more_than_the_table_would():
    clock = Clock()
    recorder = EvidenceRecorder(BUCKET, keep_seconds=60, clock=clock)
    for _ in range(30):  # five minutes of calls, one per bucket, never taken
        recorder.call("runs", "runs.get", "local", "ok", 0.001)
        recorder.count("runs", "shadow.match")
        clock.now += BUCKET
    rows = recorder.take()
    assert len(rows.calls) == len(rows.counts) == 7  # the buckets of the last 60 s, and now
    assert min(row.bucket for row in rows.calls) == T0 + 23 * BUCKET


# --- the shared table --------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def table(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'flags.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    engine = make_engine(url, pool_size=2)
    store = SqlEvidenceStore(engine)
    store.create_schema()
    yield store
    engine.dispose()


def one_call(bucket: int, side: str, seconds: float, *, errors: int = 0) -> CallRow:
    counts = histogram.empty()
    counts[histogram.slot(seconds)] = 1
    return CallRow(bucket, "runs", "runs.get", side, 1, errors, seconds, tuple(counts))


def test_every_workers_rows_add_up_and_gauges_keep_the_highest(table):
    first = Rows(calls=(one_call(T0, "remote", 0.004),),
                 counts=(CountRow(T0, "runs", "", "backlog.remote", 0, 5.0),
                         CountRow(T0, "runs", "runs.get", "shadow.match", 2, 0.0)))
    second = Rows(calls=(one_call(T0, "remote", 0.9, errors=1),),
                  counts=(CountRow(T0, "runs", "", "backlog.remote", 0, 3.0),
                          CountRow(T0, "runs", "runs.get", "shadow.match", 1, 0.0)))
    table.add(first)
    table.add(second)  # another worker, the same keys: added, not replaced
    rows = table.read(T0, T0 + BUCKET)
    (call,) = rows.calls
    assert (call.calls, call.errors) == (2, 1)
    assert call.seconds == pytest.approx(0.904)
    assert sum(call.histogram) == 2
    counts = {row.name: row for row in rows.counts}
    assert counts["shadow.match"].count == 3
    assert counts["backlog.remote"].peak == 5.0


def test_reads_take_the_buckets_of_the_window_and_pruning_drops_older_ones(table):
    table.add(Rows(calls=tuple(one_call(T0 + i * BUCKET, "local", 0.001) for i in range(3))))
    assert [r.bucket for r in table.read(T0 + BUCKET, T0 + 3 * BUCKET).calls] == \
        [T0 + BUCKET, T0 + 2 * BUCKET]
    assert table.read(T0, T0 + 30, frozenset({"reports"})) == Rows()
    assert table.prune(T0 + 2 * BUCKET) == 2
    assert [r.bucket for r in table.read(0, T0 + 100).calls] == [T0 + 2 * BUCKET]


def test_the_evidence_lives_beside_a_sqlite_flag_store_and_in_a_postgresql_one():
    """A SQLite flag store is an operator's file, written only when a flag changes."""
    assert evidence_url("sqlite:////srv/run/flags.db") == "sqlite:////srv/run/flags-evidence.db"
    assert evidence_url("postgresql://db/flags") == "postgresql://db/flags"
    assert evidence_url("sqlite:////srv/run/flags.db", "sqlite:////tmp/e.db") == \
        "sqlite:////tmp/e.db"


def test_a_lost_evidence_file_is_made_again_and_the_flush_loses_nothing(tmp_path):
    path = tmp_path / "flags-evidence.db"
    engine = evidence_engine(f"sqlite:///{path}")
    table = SqlEvidenceStore(engine)
    recorder = EvidenceRecorder(BUCKET, clock=Clock())
    flusher = EvidenceFlusher(recorder, table, interval=1.0, keep_seconds=3600,
                              clock=Clock())
    recorder.call("runs", "runs.get", "local", "ok", 0.001)
    assert flusher.flush()
    engine.dispose()
    for lost in tmp_path.glob("flags-evidence.db*"):
        lost.unlink()
    recorder.call("runs", "runs.get", "local", "ok", 0.001)
    assert flusher.flush() is False  # no table in the new, empty file: kept for next time
    assert flusher.flush() is True
    assert table.read(T0, T0 + BUCKET).calls[0].calls == 1
    engine.dispose()


# --- figures over a window ---------------------------------------------------------------

def test_figures_over_a_window_merge_every_bucket_within_it(table):
    clock = Clock(T0 + 65.0)
    reader = Evidence(table, ["runs"], bucket_seconds=BUCKET, clock=clock)
    old = one_call(T0, "remote", 5.0, errors=1)  # 65 s ago: outside a 60 s window
    recent = [one_call(T0 + 10, "remote", 0.004), one_call(T0 + 60, "remote", 0.006),
              one_call(T0 + 60, "local", 0.002)]
    table.add(Rows(calls=(old, *recent), counts=(
        CountRow(T0 + 20, "runs", "runs.get", "shadow.match", 97, 0.0),
        CountRow(T0 + 20, "runs", "runs.get", "shadow.mismatch", 3, 0.0),
        CountRow(T0 + 30, "runs", "runs.get", "shadow.recheck_transient", 2, 0.0),
        CountRow(T0 + 30, "runs", "", "breaker.worst", 0, 2.0),
        CountRow(T0 + 30, "runs", "", "breaker.samples", 4, 0.0),
        CountRow(T0 + 30, "runs", "", "breaker.not_closed", 1, 0.0),
        CountRow(T0 + 60, "runs", "", "breaker.worst", 0, 0.0),
        CountRow(T0 + 60, "runs", "", "breaker.samples", 4, 0.0),
        CountRow(T0 + 40, "runs", "", "mirror.remote.ok", 8, 0.0),
        CountRow(T0 + 40, "runs", "", "mirror.remote.deferred", 2, 0.0),
        CountRow(T0 + 40, "runs", "", "backlog.remote", 0, 12.0),
        CountRow(T0 + 60, "runs", "", "backlog.remote", 0, 1.0),
        CountRow(T0 + 50, "runs", "runs.get", "fallback.breaker_open", 5, 0.0))))

    found = reader.feature("runs", 60)
    assert (found.since, found.window_seconds) == (T0, 60)  # the bucket holding now - 60
    found = reader.feature("runs", 50)
    assert found.since == T0 + 10
    assert (found.remote.calls, found.remote.errors, found.remote.error_rate) == (2, 0, 0.0)
    assert 5.0 <= found.remote.p99_ms <= 7.5 and found.local.calls == 1
    assert [m.method for m in found.methods] == ["runs.get"]
    shadow = found.shadow
    assert (shadow.compared, shadow.mismatches, shadow.transient, shadow.persistent) == \
        (100, 3, 2, 1)
    assert shadow.mismatch_rate == pytest.approx(0.01)
    assert (found.breaker.worst, found.breaker.now) == ("open", "closed")
    assert found.breaker.open_share == pytest.approx(1 / 8)
    (mirror,) = found.mirror
    assert (mirror.target, mirror.pushed, mirror.deferred) == ("remote", 8, 2)
    assert (mirror.backlog, mirror.backlog_peak) == (1, 12)
    assert found.fallbacks == {"breaker_open": 5}


def test_a_window_without_evidence_has_no_rates_rather_than_zero(table):
    found = Evidence(table, ["runs"], bucket_seconds=BUCKET, clock=Clock()).feature("runs", 60)
    assert (found.remote.calls, found.remote.error_rate, found.remote.p99_ms) == (0, None, None)
    assert found.shadow.mismatch_rate is None and found.breaker.open_share is None


def test_a_span_is_read_bucket_by_bucket_empty_buckets_included(table):
    table.add(Rows(calls=(one_call(T0, "remote", 0.1, errors=1),
                          one_call(T0 + 20, "remote", 0.1))))
    span = Evidence(table, ["runs"], bucket_seconds=BUCKET).span("runs", T0, T0 + 30)
    assert span.whole.remote.calls == 2
    assert [b.remote.calls for b in span.buckets] == [1, 0, 1]
    assert [b.since for b in span.buckets] == [T0, T0 + 10, T0 + 20]


def test_a_series_groups_whole_buckets_into_steps_oldest_first_empty_steps_included(table):
    table.add(Rows(calls=(one_call(T0 - 60, "remote", 0.1, errors=1),  # a step before
                          one_call(T0 - 50, "local", 0.1), one_call(T0 - 40, "local", 0.1),
                          one_call(T0, "remote", 0.1))))
    clock = Clock(T0 + 5)
    series = Evidence(table, ["runs"], bucket_seconds=BUCKET, clock=clock).series(
        "runs", 120, 25)  # 25 s rounds up to 3 buckets: steps of 30 s, the last holds now
    assert [step.since for step in series] == [T0 - 90, T0 - 60, T0 - 30, T0]
    assert [step.window_seconds for step in series] == [30, 30, 30, 30]
    assert [(step.local.calls, step.remote.calls, step.remote.errors) for step in series] == \
        [(0, 0, 0), (2, 1, 1), (0, 0, 0), (0, 1, 0)]


# --- flushing ------------------------------------------------------------------------------

class BrokenTable:
    """A shared table that cannot be written (the store locked or down), until mended."""

    def __init__(self, table: SqlEvidenceStore):
        self.table = table
        self.broken = True

    def add(self, rows: Rows) -> None:
        if self.broken:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        self.table.add(rows)

    def prune(self, before: int) -> int:
        return self.table.prune(before)


def test_a_failed_flush_raises_nothing_is_counted_and_loses_nothing(table, caplog):
    clock = Clock()
    recorder = EvidenceRecorder(BUCKET, clock=clock)
    metrics = TurnoutMetrics()
    broken = BrokenTable(table)
    breaker = CircuitBreaker("runs", failure_threshold=1)
    breaker.record_failure()
    flusher = EvidenceFlusher(recorder, broken, interval=1.0, keep_seconds=3600,
                              breakers={"runs": breaker}, metrics=metrics, clock=clock)
    recorder.call("runs", "runs.get", "remote", "ok", 0.01)
    assert flusher.flush() is False
    assert metrics.registry.get_sample_value("turnout_evidence_flushes_total",
                                             {"outcome": "failed"}) == 1
    assert "evidence_flush_failed" in caplog.text
    recorder.call("runs", "runs.get", "remote", "ok", 0.01)
    broken.broken = False
    assert flusher.flush() is True
    rows = table.read(T0, T0 + BUCKET)
    assert rows.calls[0].calls == 2  # the failed flush's call, and the one after
    names = {row.name: row for row in rows.counts}
    assert names["breaker.samples"].count == 2 and names["breaker.worst"].peak == 2.0


def test_evidence_settings_are_checked_together_naming_the_variable():
    settings = {"EVIDENCE_BUCKET_SECONDS": 10, "EVIDENCE_FLUSH_SECONDS": 5.0,
                "EVIDENCE_KEEP_SECONDS": 3600, "EVIDENCE_WINDOWS": "60,900"}
    assert EvidenceConfig.from_settings(settings).windows == (60, 900)
    for change, named in (({"EVIDENCE_FLUSH_SECONDS": 20.0}, "FLUSH_SECONDS"),
                          ({"EVIDENCE_WINDOWS": "60,soon"}, "EVIDENCE_WINDOWS"),
                          ({"EVIDENCE_WINDOWS": "7200"}, "KEEP_SECONDS")):
        with pytest.raises(ConfigError, match=named):
            EvidenceConfig.from_settings({**settings, **change})


def test_the_recorder_counts_shadow_outcomes_as_a_listener():
    recorder = EvidenceRecorder(BUCKET, clock=Clock())
    recorder.shadow(ShadowOutcome("runs", "runs.get", "mismatch"))
    recorder.shadow(ShadowOutcome("runs", "runs.get", "recheck_transient"))
    names = sorted(row.name for row in recorder.take().counts)
    assert names == ["shadow.mismatch", "shadow.recheck_transient"]
