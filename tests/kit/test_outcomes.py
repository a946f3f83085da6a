"""The outcome store and Keyed, on SQLite and PostgreSQL with an app's own LocalNotes
(tests/kit/notes_app.py): replay, a reused key, a repeat in flight, expiry, and the write
committed only with its key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from notes_app import NOTES, LocalNotes, create_schema, make_sessions
from shims import idempotency
from shims.errors import IdempotencyKeyReused, NotFound, UpstreamError
from shims.outcomes import Keyed, Outcome, OutcomeStore
from shims.sql import make_engine
from support import ROOT, ManualClock

ADD_NOTE = NOTES.method("add_note")
NOTE = "Tempo"


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
def notes(engine):
    return LocalNotes(make_sessions(engine))


@pytest.fixture
def author_id(notes):
    return notes.add_author("ada@example.com").id


def rows(database, sql: str) -> list[tuple]:
    with database.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def texts(database) -> list[str]:
    return [text for (text,) in rows(database, "SELECT text FROM notes ORDER BY text")]


def keys(database) -> list[str]:
    return [key for (key,) in rows(database, "SELECT key FROM turnout_idempotency")]


def adding(notes, author_id, calls: list, text: str = NOTE):
    """A store.once work that adds a note through LocalNotes, as the service would answer it."""
    def work() -> Outcome:
        calls.append(text)
        record = notes.add_note(author_id, text)
        return Outcome(200, json.dumps({"result": {"id": record.id}}))
    return work


# --- once --------------------------------------------------------------------------------

def test_a_repeat_answers_the_first_outcome_without_running_again(store, notes, author_id,
                                                                  database):
    calls: list = []
    first = store.once("key-1", "asked", adding(notes, author_id, calls))
    again = store.once("key-1", "asked", adding(notes, author_id, calls))
    assert again == first
    assert calls == ["Tempo"]
    assert texts(database) == ["Tempo"]


def test_the_same_key_for_another_request_is_refused_naming_the_header(store, notes, author_id,
                                                                       database):
    calls: list = []
    store.once("key-1", "asked", adding(notes, author_id, calls))
    with pytest.raises(IdempotencyKeyReused) as refused:
        store.once("key-1", "asked something else", adding(notes, author_id, calls))
    assert (refused.value.status, refused.value.field) == (422, "Idempotency-Key")
    assert calls == ["Tempo"] and texts(database) == ["Tempo"]


def test_a_contract_error_is_an_outcome_too(store):
    refused = Outcome(404, json.dumps({"error": "not_found", "message": "no run 7"}))
    assert store.once("key-1", "asked", lambda: refused) == refused
    assert store.once("key-1", "asked", lambda: pytest.fail("ran again")) == refused


def test_a_5xx_is_not_kept_and_its_writes_are_undone(store, notes, author_id, database):
    calls: list = []

    def fails_after_writing() -> Outcome:
        adding(notes, author_id, calls)()
        return Outcome(503, json.dumps({"error": "unavailable", "message": "try again"}))

    assert store.once("key-1", "asked", fails_after_writing).status == 503
    assert texts(database) == [] and keys(database) == []
    assert store.once("key-1", "asked", adding(notes, author_id, calls)).status == 200
    assert texts(database) == ["Tempo"]


def test_an_outcome_expires_after_its_ttl_and_is_pruned(store, notes, author_id, database, clock):
    calls: list = []
    store.once("key-1", "asked", adding(notes, author_id, calls))
    clock.advance(3599)
    store.once("key-1", "asked", adding(notes, author_id, calls))
    assert calls == ["Tempo"]  # still kept
    clock.advance(2)
    assert store.lookup("key-1", "asked") is None  # past the TTL: as if never seen
    store.once("key-1", "asked", adding(notes, author_id, calls, "Second"))
    assert calls == ["Tempo", "Second"] and keys(database) == ["key-1"]
    store.once("key-2", "asked", adding(notes, author_id, calls))
    clock.advance(3601)
    assert store.prune() == 2 and keys(database) == []


# --- atomicity ------------------------------------------------------------------------------

def test_the_write_is_not_committed_before_its_outcome_is(store, notes, author_id, database):
    """LocalNotes commits its own session; joined to the store's transaction that commit is a
    savepoint: no other connection sees the note until the outcome is stored with it."""
    seen_meanwhile = []

    def work() -> Outcome:
        notes.add_note(author_id, NOTE)
        seen_meanwhile.extend(texts(database))
        return Outcome(201, "{}")

    store.once("key-1", "asked", work)
    assert seen_meanwhile == []
    assert texts(database) == ["Tempo"] and keys(database) == ["key-1"]


def test_a_failure_after_the_domain_write_commits_nothing(store, notes, author_id, database):
    def work() -> Outcome:
        notes.add_note(author_id, NOTE)
        raise RuntimeError("the process dies here")

    with pytest.raises(RuntimeError):
        store.once("key-1", "asked", work)
    assert texts(database) == [] and keys(database) == []


def test_a_failure_recording_the_outcome_undoes_the_domain_write(store, notes, author_id,
                                                                 database):
    """The write done, storing its outcome fails: both go, so a retry applies it once."""
    def work() -> Outcome:
        notes.add_note(author_id, NOTE)
        return Outcome(200, body=object())  # the UPDATE of the outcome cannot bind this

    with pytest.raises(Exception):  # noqa: B017 - whichever error the driver raises
        store.once("key-1", "asked", work)
    assert texts(database) == [] and keys(database) == []
    calls: list = []
    store.once("key-1", "asked", adding(notes, author_id, calls))
    assert texts(database) == ["Tempo"]


# --- other processes: a repeat in flight, a SIGKILL mid-write --------------------------------

CHILD = """
import json, sys, time
from pathlib import Path
from notes_app import LocalNotes, make_sessions
from shims.sql import make_engine
from shims.outcomes import Outcome, OutcomeStore
url, author_id, hold, ready = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
engine = make_engine(url)
notes = LocalNotes(make_sessions(engine))
def work():
    record = notes.add_note(author_id, "Tempo")
    Path(ready).write_text("claimed and written")
    time.sleep(hold)
    return Outcome(200, json.dumps({"result": {"id": record.id, "by": "child"}}))
print(OutcomeStore(engine).once("key-1", "asked", work).body)
"""


def start_child(url, author_id, hold: float, ready):
    process = subprocess.Popen([sys.executable, "-c", CHILD, url, str(author_id),
                                str(hold), str(ready)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'kit'}"})
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


def test_a_repeat_in_flight_waits_for_the_first_and_answers_its_outcome(shared_store, notes,
                                                                       author_id, database,
                                                                       url, tmp_path):
    store = shared_store
    child = start_child(url, author_id, 1.0, tmp_path / "ready")
    calls: list = []
    started = time.monotonic()
    outcome = store.once("key-1", "asked", adding(notes, author_id, calls))
    waited = time.monotonic() - started
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert json.loads(outcome.body)["result"]["by"] == "child"
    assert outcome.body == out.strip()
    assert calls == []  # the repeat never ran its own write
    assert waited > 0.3  # it waited for the first transaction (held ~1 s), not refused
    assert texts(database) == ["Tempo"]


def test_a_sigkill_mid_write_leaves_neither_the_write_nor_its_key(shared_store, notes, author_id,
                                                                  database, url, tmp_path):
    store = shared_store
    child = start_child(url, author_id, 60.0, tmp_path / "ready")
    os.kill(child.pid, signal.SIGKILL)  # our own child, by its PID
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert texts(database) == [] and keys(database) == []
    calls: list = []
    store.once("key-1", "asked", adding(notes, author_id, calls))  # the caller's retry
    assert calls == ["Tempo"] and texts(database) == ["Tempo"]


# --- Keyed -----------------------------------------------------------------------------------

@pytest.fixture
def keyed(notes, store):
    return Keyed(notes, NOTES, store)


def forwarded(method, *args):
    """The scope a service opens for a call that carries this key."""
    return idempotency.fingerprint(method, method.bind(args, {}))


def test_keyed_writes_replay_within_a_key_scope(keyed, author_id, database):
    with idempotency.scope("client-key", forwarded(ADD_NOTE, author_id, NOTE)):
        first = keyed.add_note(author_id, NOTE)
    with idempotency.scope("client-key", forwarded(ADD_NOTE, author_id, NOTE)):
        again = keyed.add_note(author_id, NOTE)
    assert again == first
    assert texts(database) == ["Tempo"]
    assert keys(database) == ["client-key"]  # the forwarded call keeps the caller's key


def test_keyed_writes_outside_a_scope_and_reads_go_straight_through(keyed, author_id, database):
    keyed.add_note(author_id, NOTE)
    keyed.add_note(author_id, NOTE)
    assert texts(database) == ["Tempo", "Tempo"] and keys(database) == []
    assert len(keyed.list_notes(author_id)) == 2


def test_a_replayed_contract_error_is_raised_again(keyed, author_id, database):
    """A DELETE repeated with its key answers as the first did, not 404 the second time."""
    note = keyed.add_note(author_id, NOTE)
    delete = NOTES.method("delete_note")
    for _ in range(2):
        with idempotency.scope("delete-key", forwarded(delete, author_id, note.id)):
            assert keyed.delete_note(author_id, note.id) is None
    missing = forwarded(delete, author_id, 12345)
    for _ in range(2):
        with idempotency.scope("missing-key", missing), pytest.raises(NotFound):
            keyed.delete_note(author_id, 12345)
    assert sorted(keys(database)) == ["delete-key", "missing-key"]


def test_an_upstream_failure_is_not_kept(store, engine, author_id, database):
    class FailingAdd(LocalNotes):
        calls = 0

        def add_note(self, author_id, text):
            self.calls += 1
            raise UpstreamError("the spell checker could not be reached")

    failing = FailingAdd(make_sessions(engine))
    keyed = Keyed(failing, NOTES, store)
    asked = forwarded(ADD_NOTE, author_id, NOTE)
    for _ in range(2):
        with idempotency.scope("add-key", asked), pytest.raises(UpstreamError):
            keyed.add_note(author_id, NOTE)
    assert failing.calls == 2 and keys(database) == []
