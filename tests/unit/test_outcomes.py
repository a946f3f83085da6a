"""The outcome store and Keyed, on SQLite and PostgreSQL with the monolith's own LocalRuns:
replay, a reused key, a repeat in flight, expiry, and the write committed only with its key."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_engine, make_sessions
from monolith.runs.service import LocalRuns
from shims import idempotency
from contracts.accounts import Profile, SignUp
from contracts.runs import RUNS, RunInput
from shims.errors import IdempotencyKeyReused, NotFound, UpstreamError
from shims.outcomes import Keyed, Outcome, OutcomeStore
from support import FAST_HASH, ROOT, ManualClock

ADD_RUN = RUNS.method("add_run")
RUN = RunInput(name="Tempo", distance=8000.0, start_date=dt.datetime(2026, 5, 3, 7),
               elapsed_time=2400)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outcomes.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(url):
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def database(url, engine):
    """Another engine on the same database: it sees only what is committed."""
    observer = make_engine(url)
    yield observer
    observer.dispose()


@pytest.fixture
def clock():
    return ManualClock(1_800_000_000.0)


@pytest.fixture
def store(engine, clock):
    store = OutcomeStore(engine, ttl=3600, clock=clock)
    store.create_schema()
    return store


@pytest.fixture
def runs(engine):
    return LocalRuns(make_sessions(engine))


@pytest.fixture
def user_id(engine):
    accounts = LocalAccounts(make_sessions(engine), hash_method=FAST_HASH)
    return accounts.sign_up(SignUp(email="ada@example.com", password="correct-horse-9",
                                   profile=Profile())).id


def rows(database, sql: str) -> list[tuple]:
    with database.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def run_names(database) -> list[str]:
    return [name for (name,) in rows(database, "SELECT name FROM runs ORDER BY name")]


def keys(database) -> list[str]:
    return [key for (key,) in rows(database, "SELECT key FROM turnout_idempotency")]


def adding(runs, user_id, calls: list, run: RunInput = RUN):
    """A store.once work that adds a run through LocalRuns, as the service would answer it."""
    def work() -> Outcome:
        calls.append(run.name)
        record = runs.add_run(user_id, run)
        return Outcome(200, json.dumps({"result": {"id": record.id}}))
    return work


# --- once --------------------------------------------------------------------------------

def test_a_repeat_answers_the_first_outcome_without_running_again(store, runs, user_id,
                                                                  database):
    calls: list = []
    first = store.once("key-1", "asked", adding(runs, user_id, calls))
    again = store.once("key-1", "asked", adding(runs, user_id, calls))
    assert again == first
    assert calls == ["Tempo"]
    assert run_names(database) == ["Tempo"]


def test_the_same_key_for_another_request_is_refused_naming_the_header(store, runs, user_id,
                                                                       database):
    calls: list = []
    store.once("key-1", "asked", adding(runs, user_id, calls))
    with pytest.raises(IdempotencyKeyReused) as refused:
        store.once("key-1", "asked something else", adding(runs, user_id, calls))
    assert (refused.value.status, refused.value.field) == (422, "Idempotency-Key")
    assert calls == ["Tempo"] and run_names(database) == ["Tempo"]


def test_a_contract_error_is_an_outcome_too(store):
    refused = Outcome(404, json.dumps({"error": "not_found", "message": "no run 7"}))
    assert store.once("key-1", "asked", lambda: refused) == refused
    assert store.once("key-1", "asked", lambda: pytest.fail("ran again")) == refused


def test_a_5xx_is_not_kept_and_its_writes_are_undone(store, runs, user_id, database):
    calls: list = []

    def fails_after_writing() -> Outcome:
        adding(runs, user_id, calls)()
        return Outcome(503, json.dumps({"error": "unavailable", "message": "try again"}))

    assert store.once("key-1", "asked", fails_after_writing).status == 503
    assert run_names(database) == [] and keys(database) == []
    assert store.once("key-1", "asked", adding(runs, user_id, calls)).status == 200
    assert run_names(database) == ["Tempo"]


def test_an_outcome_expires_after_its_ttl_and_is_pruned(store, runs, user_id, database, clock):
    calls: list = []
    store.once("key-1", "asked", adding(runs, user_id, calls))
    clock.advance(3599)
    store.once("key-1", "asked", adding(runs, user_id, calls))
    assert calls == ["Tempo"]  # still kept
    clock.advance(2)
    assert store.lookup("key-1", "asked") is None  # past the TTL: as if never seen
    store.once("key-1", "asked", adding(runs, user_id, calls, RunInput(**{
        **RUN.__dict__, "name": "Second"})))
    assert calls == ["Tempo", "Second"] and keys(database) == ["key-1"]
    store.once("key-2", "asked", adding(runs, user_id, calls))
    clock.advance(3601)
    assert store.prune() == 2 and keys(database) == []


# --- atomicity ------------------------------------------------------------------------------

def test_the_write_is_not_committed_before_its_outcome_is(store, runs, user_id, database):
    """LocalRuns commits its own session; joined to the store's transaction that commit is a
    savepoint: no other connection sees the run until the outcome is stored with it."""
    seen_meanwhile = []

    def work() -> Outcome:
        runs.add_run(user_id, RUN)
        seen_meanwhile.extend(run_names(database))
        return Outcome(201, "{}")

    store.once("key-1", "asked", work)
    assert seen_meanwhile == []
    assert run_names(database) == ["Tempo"] and keys(database) == ["key-1"]


def test_a_failure_after_the_domain_write_commits_nothing(store, runs, user_id, database):
    def work() -> Outcome:
        runs.add_run(user_id, RUN)
        raise RuntimeError("the process dies here")

    with pytest.raises(RuntimeError):
        store.once("key-1", "asked", work)
    assert run_names(database) == [] and keys(database) == []


def test_a_failure_recording_the_outcome_undoes_the_domain_write(store, runs, user_id,
                                                                 database):
    """The write done, storing its outcome fails: both go, so a retry applies it once."""
    def work() -> Outcome:
        runs.add_run(user_id, RUN)
        return Outcome(200, body=object())  # the UPDATE of the outcome cannot bind this

    with pytest.raises(Exception):  # noqa: B017 - whichever error the driver raises
        store.once("key-1", "asked", work)
    assert run_names(database) == [] and keys(database) == []
    calls: list = []
    store.once("key-1", "asked", adding(runs, user_id, calls))
    assert run_names(database) == ["Tempo"]


# --- other processes: a repeat in flight, a SIGKILL mid-write --------------------------------

CHILD = """
import json, sys, time
from pathlib import Path
from monolith.db import make_engine, make_sessions
from monolith.runs.service import LocalRuns
from shims.outcomes import Outcome, OutcomeStore
from tests.unit.test_outcomes import RUN
url, user_id, hold, ready = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
engine = make_engine(url)
runs = LocalRuns(make_sessions(engine))
def work():
    record = runs.add_run(user_id, RUN)
    Path(ready).write_text("claimed and written")
    time.sleep(hold)
    return Outcome(200, json.dumps({"result": {"id": record.id, "by": "child"}}))
print(OutcomeStore(engine).once("key-1", "asked", work).body)
"""


def start_child(url, user_id, hold: float, ready):
    process = subprocess.Popen([sys.executable, "-c", CHILD, url, str(user_id),
                                str(hold), str(ready)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    started = time.monotonic()
    while not ready.exists():
        if process.poll() is not None or time.monotonic() - started > 60:
            process.kill()
            pytest.fail(f"the child never claimed the key: {process.communicate()}")
        time.sleep(0.02)
    return process


@pytest.fixture
def shared_store(engine):
    """On the wall clock, as the child's: an outcome's age must mean the same to both."""
    store = OutcomeStore(engine)
    store.create_schema()
    return store


def test_a_repeat_in_flight_waits_for_the_first_and_answers_its_outcome(shared_store, runs,
                                                                       user_id, database,
                                                                       url, tmp_path):
    store = shared_store
    child = start_child(url, user_id, 1.0, tmp_path / "ready")
    calls: list = []
    started = time.monotonic()
    outcome = store.once("key-1", "asked", adding(runs, user_id, calls))
    waited = time.monotonic() - started
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert json.loads(outcome.body)["result"]["by"] == "child"
    assert outcome.body == out.strip()
    assert calls == []  # the repeat never ran its own write
    assert waited > 0.3  # it waited for the first transaction (held ~1 s), not refused
    assert run_names(database) == ["Tempo"]


def test_a_sigkill_mid_write_leaves_neither_the_write_nor_its_key(shared_store, runs, user_id,
                                                                  database, url, tmp_path):
    store = shared_store
    child = start_child(url, user_id, 60.0, tmp_path / "ready")
    os.kill(child.pid, signal.SIGKILL)  # our own child, by its PID
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert run_names(database) == [] and keys(database) == []
    calls: list = []
    store.once("key-1", "asked", adding(runs, user_id, calls))  # the caller's retry
    assert calls == ["Tempo"] and run_names(database) == ["Tempo"]


# --- Keyed -----------------------------------------------------------------------------------

@pytest.fixture
def keyed(runs, store):
    return Keyed(runs, RUNS, store)


def forwarded(method, *args):
    """The scope a service opens for a call that carries this key."""
    return idempotency.fingerprint(method, method.bind(args, {}))


def test_keyed_writes_replay_within_a_key_scope(keyed, user_id, database):
    with idempotency.scope("client-key", forwarded(ADD_RUN, user_id, RUN)):
        first = keyed.add_run(user_id, RUN)
    with idempotency.scope("client-key", forwarded(ADD_RUN, user_id, RUN)):
        again = keyed.add_run(user_id, RUN)
    assert again == first
    assert run_names(database) == ["Tempo"]
    assert keys(database) == ["client-key"]  # the forwarded call keeps the caller's key


def test_keyed_writes_outside_a_scope_and_reads_go_straight_through(keyed, user_id, database):
    keyed.add_run(user_id, RUN)
    keyed.add_run(user_id, RUN)
    assert run_names(database) == ["Tempo", "Tempo"] and keys(database) == []
    assert len(keyed.list_runs(user_id, 2026, 5)) == 2


def test_a_replayed_contract_error_is_raised_again(keyed, user_id, database):
    """A DELETE repeated with its key answers as the first did, not 404 the second time."""
    run = keyed.add_run(user_id, RUN)
    delete = RUNS.method("delete_run")
    for _ in range(2):
        with idempotency.scope("delete-key", forwarded(delete, user_id, run.id)):
            assert keyed.delete_run(user_id, run.id) is None
    missing = forwarded(delete, user_id, 12345)
    for _ in range(2):
        with idempotency.scope("missing-key", missing), pytest.raises(NotFound):
            keyed.delete_run(user_id, 12345)
    assert sorted(keys(database)) == ["delete-key", "missing-key"]


def test_an_upstream_failure_is_not_kept(store, engine, user_id, database):
    class FailingImport(LocalRuns):
        calls = 0

        def import_runs(self, user_id, runs):
            self.calls += 1
            raise UpstreamError("Strava could not be reached")

    failing = FailingImport(make_sessions(engine))
    keyed = Keyed(failing, RUNS, store)
    asked = forwarded(RUNS.method("import_runs"), user_id, [RUN])
    for _ in range(2):
        with idempotency.scope("import-key", asked), pytest.raises(UpstreamError):
            keyed.import_runs(user_id, [RUN])
    assert failing.calls == 2 and keys(database) == []
