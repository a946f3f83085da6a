"""`shims.cli.data` copy and verify between two SQLite databases, each behind LocalRunsSync:
copies that keep ids, never delete what they did not see deleted, never overwrite a newer
write with an older snapshot, and a verify that tells rows in flight from real differences."""

import datetime as dt

import gevent

import pytest
from sqlalchemy import delete, insert, select, update

from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_sessions
from monolith.models import Base, Run, User
from monolith.runs.service import LocalRuns
from monolith.runs.sync import RUNS, USERS, LocalRunsSync
from contracts.accounts import Profile, SignUp
from contracts.runs import RunInput
from monolith.wiring import REGISTRY
from shims.cli import data
from shims.mirror import Channel
from shims.sql import make_engine

FAST_HASH = "pbkdf2:sha256:1000"
WHEN = dt.datetime(2026, 5, 17, 7, 30)
TABLES = REGISTRY["runs"].data.tables  # users, then runs


class Side:
    """One database: its engine, its sync, and the contract services that write to it."""

    def __init__(self, path, *, all_tables):
        self.engine = make_engine(f"sqlite:///{path}", pool_size=2)
        if all_tables:
            create_schema(self.engine)  # the monolith: races and the rest beside users and runs
        else:
            Base.metadata.create_all(self.engine, tables=[User.__table__, Run.__table__])
        sessions = make_sessions(self.engine)
        self.sync = LocalRunsSync(self.engine)
        if not all_tables:
            from shims import outbox
            outbox.metadata.create_all(self.engine)
        self.accounts = LocalAccounts(sessions, hash_method=FAST_HASH)
        self.runs = LocalRuns(sessions)

    def rows(self, table):
        with self.engine.connect() as connection:
            return {row["id"]: dict(row) for row in
                    connection.execute(select(table)).mappings()}

    def execute(self, statement):
        with self.engine.begin() as connection:
            connection.execute(statement)


@pytest.fixture
def monolith(tmp_path):
    side = Side(tmp_path / "monolith.db", all_tables=True)
    yield side
    side.engine.dispose()


@pytest.fixture
def service(tmp_path):
    side = Side(tmp_path / "dataservice.db", all_tables=False)
    yield side
    side.engine.dispose()


def sign_up(side, email, **profile):
    return side.accounts.sign_up(SignUp(email=email, password="correct-horse-9",
                                        profile=Profile(**profile)))


def add_run(side, user, name="Tempo", days=0, **extra):
    return side.runs.add_run(user.id, RunInput(name=name, distance=10000.0,
                                               start_date=WHEN + dt.timedelta(days=days),
                                               elapsed_time=2500, **extra))


@pytest.fixture
def seeded(monolith):
    """Three runners on the monolith, one of them with no runs and one linked to Strava."""
    ada = sign_up(monolith, "ada@example.com", first_name="Ada", age=34)
    bob = sign_up(monolith, "bob@example.com")
    sign_up(monolith, "cy@example.com")
    monolith.accounts.link_strava(ada.id, "tok-ada")
    runs = [add_run(monolith, ada, "Tempo"), add_run(monolith, ada, "Long", 1,
                                                     average_heartrate=140.0),
            add_run(monolith, bob, "Easy", 2, strava_id=123)]
    return ada, bob, runs


def link(source, target, name="remote") -> Channel:
    return Channel("runs", name, source.sync, target.sync)


def copy(source, target):
    return data.copy(link(source, target), TABLES, catch_up_seconds=5)


def differences(monolith, service, settle_seconds=0.0):
    return {d.table: d for d in data.verify(monolith.sync, service.sync, TABLES,
                                            settle_seconds=settle_seconds)}


def assert_clean(monolith, service):
    found = differences(monolith, service)
    assert set(found) == {"users", "runs"}
    for difference in found.values():
        assert difference.clean and not difference.in_flight, difference


def test_empty_databases_are_the_same(monolith, service):
    done = copy(monolith, service)
    assert (done.snapshot_rows, done.refused, done.backlog_left) == (0, [], 0)
    assert_clean(monolith, service)


def test_copy_moves_every_row_and_keeps_ids(monolith, service, seeded):
    ada, bob, runs = seeded
    assert copy(monolith, service).snapshot_rows == 3 + 3
    assert_clean(monolith, service)
    assert service.rows(USERS) == monolith.rows(USERS)
    assert service.rows(RUNS) == monolith.rows(RUNS)
    assert set(service.rows(RUNS)) == {run.id for run in runs}
    # The service answers the contract with the very same records.
    assert service.accounts.get_user(ada.id) == monolith.accounts.get_user(ada.id)
    assert service.runs.list_runs(ada.id, 2026, 5) == monolith.runs.list_runs(ada.id, 2026, 5)
    assert service.runs.get_run(bob.id, runs[2].id).strava_id == 123
    assert service.rows(USERS)[ada.id]["strava_token"] == "tok-ada"
    assert monolith.sync.backlog().entries == 0  # everything copied is settled


def test_copy_is_idempotent(monolith, service, seeded):
    copy(monolith, service)
    users, runs = service.rows(USERS), service.rows(RUNS)
    digests = [service.sync.digest(table) for table in ("users", "runs")]
    copy(monolith, service)
    copy(monolith, service)
    assert service.rows(USERS) == users
    assert service.rows(RUNS) == runs
    assert [service.sync.digest(table) for table in ("users", "runs")] == digests
    assert_clean(monolith, service)
    assert monolith.rows(USERS) == users  # the source is never touched


def test_copy_in_small_batches(monolith, service, seeded, monkeypatch):
    monkeypatch.setattr(data, "BATCH", 2)
    copy(monolith, service)
    assert_clean(monolith, service)


# --- copy never loses a write (issue 8) ------------------------------------------------

def test_copy_keeps_rows_the_target_wrote_itself(monolith, service, seeded):
    """The walk's second cycle: writes acknowledged by the service in `remote` were deleted
    by the next copy from the monolith. A copy deletes only rows it saw deleted."""
    ada, _, _ = seeded
    copy(monolith, service)
    written_remotely = add_run(service, ada, "acknowledged by the service")
    copy(monolith, service)
    assert service.runs.get_run(ada.id, written_remotely.id).name == written_remotely.name
    # ... and verify calls it in flight (on its way home), not a difference.
    found = differences(monolith, service)["runs"]
    assert found.clean and found.in_flight == [str(written_remotely.id)]
    link(service, monolith, "local").drain()
    assert_clean(monolith, service)


def test_copy_never_overwrites_a_newer_write_with_the_older_snapshot(monolith, service,
                                                                   seeded):
    ada, _, runs = seeded
    copy(monolith, service)
    service.runs.update_run(ada.id, runs[0].id, RunInput(
        name="renamed on the service later", distance=10000.0, start_date=WHEN,
        elapsed_time=2500))
    copy(monolith, service)
    assert service.runs.get_run(ada.id, runs[0].id).name == "renamed on the service later"


def test_copy_carries_deletes_as_tombstones(monolith, service, seeded):
    ada, _, _ = seeded
    copy(monolith, service)
    monolith.accounts.delete_user(ada.id)  # and its runs, by cascade: tombstones for each
    copy(monolith, service)
    assert_clean(monolith, service)
    assert ada.id not in service.rows(USERS)
    assert all(run["user_id"] != ada.id for run in service.rows(RUNS).values())


def test_a_row_deleted_behind_the_outbox_is_reported_not_deleted(monolith, service, seeded):
    _, _, runs = seeded
    copy(monolith, service)
    monolith.execute(delete(RUNS).where(RUNS.c.id == runs[1].id))  # raw SQL: no tombstone
    copy(monolith, service)
    assert runs[1].id in service.rows(RUNS)
    found = differences(monolith, service)["runs"]
    assert found.only_in_service == [str(runs[1].id)] and found.in_flight == []


def test_a_user_re_registered_with_the_same_email_gets_copied(monolith, service, seeded):
    """The target still holds the old row with that email until its tombstone lands."""
    ada, _, _ = seeded
    copy(monolith, service)
    monolith.accounts.delete_user(ada.id)
    again = sign_up(monolith, "ada@example.com")
    done = copy(monolith, service)
    assert done.refused == []
    assert_clean(monolith, service)
    assert service.accounts.get_user(again.id).email == "ada@example.com"


def test_copy_from_the_service(monolith, service, seeded):
    ada, _, runs = seeded
    copy(monolith, service)
    # The service became authoritative and took writes the monolith never saw.
    eve = sign_up(service, "eve@example.com")
    new_run = add_run(service, eve, "Service-only run")
    service.runs.update_run(ada.id, runs[0].id, RunInput(name="Renamed", distance=10000.0,
                                                         start_date=WHEN, elapsed_time=2500))
    service.runs.delete_run(runs[2].user_id, runs[2].id)

    copy(service, monolith)
    assert_clean(monolith, service)
    assert monolith.runs.get_run(eve.id, new_run.id).name == "Service-only run"
    assert monolith.runs.get_run(ada.id, runs[0].id).name == "Renamed"
    assert runs[2].id not in monolith.rows(RUNS)
    assert monolith.rows(USERS) == service.rows(USERS)


def test_copying_from_an_empty_side_deletes_nothing(monolith, service, seeded):
    """The wrong --from used to risk deleting every runner on the other side."""
    users, runs = monolith.rows(USERS), monolith.rows(RUNS)
    copy(service, monolith)
    assert monolith.rows(USERS) == users
    assert monolith.rows(RUNS) == runs


def test_copy_under_concurrent_writes_on_both_sides_loses_none(monolith, service, seeded,
                                                                monkeypatch):
    """Writes land on both sides between every page of the snapshot (the copy yields to a
    writer after each page); afterwards each write is where its side put it, and once the
    outboxes are drained both sides hold every write."""
    ada, bob, _ = seeded
    copy(monolith, service)
    monkeypatch.setattr(data, "BATCH", 1)
    written = {"monolith": [], "service": []}
    real_copy = Channel.copy

    def copy_then_yield(self, keys):
        done = real_copy(self, keys)
        gevent.sleep(0)
        return done

    def writer(side, name):
        for n in range(40):
            written[name].append(add_run(side, ada if n % 2 else bob, f"{name}-{n}", n % 20))
            gevent.sleep(0)

    monkeypatch.setattr(Channel, "copy", copy_then_yield)
    writers = [gevent.spawn(writer, monolith, "monolith"), gevent.spawn(writer, service,
                                                                         "service")]
    done = copy(monolith, service)
    gevent.joinall(writers, raise_error=True)
    assert done.refused == []
    for name, side in (("monolith", monolith), ("service", service)):
        assert {run.id for run in written[name]} <= set(side.rows(RUNS)), name
    link(monolith, service).drain()
    link(service, monolith, "local").drain()
    assert_clean(monolith, service)
    assert len(monolith.rows(RUNS)) == 3 + 80


# --- verify: real differences and rows in flight -----------------------------------------

def changed_run(source, _target, runs, _users):
    source.execute(update(RUNS).where(RUNS.c.id == runs[0].id).values(distance=10001.0))
    return "runs", str(runs[0].id)


def changed_user(source, _target, _runs, users):
    source.execute(update(USERS).where(USERS.c.id == users[0].id).values(strava_token=None))
    return "users", str(users[0].id)


def extra_run(source, _target, _runs, users):
    with source.engine.begin() as connection:  # raw SQL: the outbox never hears of it
        connection.execute(insert(RUNS).values(
            id=777, user_id=users[1].id, name="Extra", distance=1000.0, start_date=WHEN,
            elapsed_time=300, average_speed=3.3, created_at=WHEN))
    return "runs", "777"


CHANGES = {"changed_run": changed_run, "changed_user": changed_user, "extra_run": extra_run}


@pytest.mark.parametrize("changed_side", ["monolith", "service"])
@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_verify_finds_an_edit_behind_the_outbox_and_copy_repairs_it(monolith, service, seeded,
                                                                    change, changed_side):
    ada, bob, runs = seeded
    copy(monolith, service)
    users = sorted([ada, bob, monolith.accounts.list_users()[-1]], key=lambda u: u.email)
    edited = monolith if changed_side == "monolith" else service
    table, row_id = change(edited, None, runs, users)

    difference = differences(monolith, service)[table]
    assert not difference.clean and difference.in_flight == []
    if change is extra_run:
        assert getattr(difference, f"only_in_{changed_side}") == [row_id]
    else:
        assert difference.differing == [row_id]
    report = "\n".join(data.report([difference]))
    assert "DIFFERENT" in report and row_id in report

    # Copied from the side the operator names authoritative: the edit is repaired either way.
    source, target = (monolith, service) if changed_side == "monolith" else (service, monolith)
    copy(source, target)
    assert_clean(monolith, service)


def test_verify_waits_for_rows_in_flight_to_land(monolith, service, seeded):
    copy(monolith, service)
    ada, _, _ = seeded
    add_run(monolith, ada, "mirrored a moment later")
    gevent.spawn_later(0.3, link(monolith, service).drain)
    found = differences(monolith, service, settle_seconds=5)["runs"]
    assert found.clean and found.in_flight == []


def test_verify_reports_rows_still_in_flight_after_the_wait(monolith, service, seeded):
    copy(monolith, service)
    ada, _, _ = seeded
    late = add_run(monolith, ada, "never mirrored")
    found = differences(monolith, service, settle_seconds=0.2)["runs"]
    assert found.clean and found.in_flight == [str(late.id)]
    assert data.report([found])[0].endswith("IN FLIGHT")


def test_the_report(monolith, service, seeded):
    copy(monolith, service)
    assert data.report(data.verify(monolith.sync, service.sync, TABLES)) == [
        "users  monolith       3  service       3  same",
        "runs   monolith       3  service       3  same"]


def test_the_report_shortens_long_lists(monolith, service):
    user = sign_up(monolith, "many@example.com")
    copy(monolith, service)
    with monolith.engine.begin() as connection:
        for n in range(15):
            connection.execute(insert(RUNS).values(
                id=1000 + n, user_id=user.id, name=f"run {n}", distance=1000.0, start_date=WHEN,
                elapsed_time=300, average_speed=3.3, created_at=WHEN))
    runs_line = data.report(data.verify(monolith.sync, service.sync, TABLES), shown=10)[-1]
    assert runs_line.strip().startswith("only in monolith: 1000, 1001")
    assert runs_line.endswith("(+5 more)")
