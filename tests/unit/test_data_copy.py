"""`scripts.data` copy and verify between two SQLite databases, each behind LocalRunsSync:
idempotent copies that keep ids, every kind of difference found on either side, and
repaired by the next copy, in either direction."""

import datetime as dt

import pytest
from sqlalchemy import delete, insert, select, update

from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_sessions
from monolith.models import Base, Run, User
from monolith.runs.service import LocalRuns
from monolith.runs.sync import RUNS, USERS, LocalRunsSync
from scripts import data
from shims.contracts.accounts import Profile, SignUp
from shims.contracts.runs import RunInput
from shims.errors import Conflict
from shims.sql import make_engine

FAST_HASH = "pbkdf2:sha256:1000"
WHEN = dt.datetime(2026, 5, 17, 7, 30)


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


def differences(monolith, service):
    return {d.table: d for d in data.verify(monolith.sync, service.sync)}


def assert_clean(monolith, service):
    found = differences(monolith, service)
    assert set(found) == {"users", "runs"}
    for difference in found.values():
        assert difference.clean, difference


def test_empty_databases_are_the_same(monolith, service):
    assert data.copy(monolith.sync, service.sync) == 0
    assert_clean(monolith, service)


def test_copy_moves_every_row_and_keeps_ids(monolith, service, seeded):
    ada, bob, runs = seeded
    assert not all(d.clean for d in differences(monolith, service).values())
    assert data.copy(monolith.sync, service.sync) == 3 + 3
    assert_clean(monolith, service)
    assert service.rows(USERS) == monolith.rows(USERS)
    assert service.rows(RUNS) == monolith.rows(RUNS)
    assert set(service.rows(RUNS)) == {run.id for run in runs}
    # The service answers the contract with the very same records.
    assert service.accounts.get_user(ada.id) == monolith.accounts.get_user(ada.id)
    assert service.runs.list_runs(ada.id, 2026, 5) == monolith.runs.list_runs(ada.id, 2026, 5)
    assert service.runs.get_run(bob.id, runs[2].id).strava_id == 123
    assert service.rows(USERS)[ada.id]["strava_token"] == "tok-ada"


def test_copy_is_idempotent(monolith, service, seeded):
    data.copy(monolith.sync, service.sync)
    users, runs = service.rows(USERS), service.rows(RUNS)
    digests = [service.sync.digest(table) for table in ("users", "runs")]
    data.copy(monolith.sync, service.sync)
    data.copy(monolith.sync, service.sync)
    assert service.rows(USERS) == users
    assert service.rows(RUNS) == runs
    assert [service.sync.digest(table) for table in ("users", "runs")] == digests
    assert_clean(monolith, service)
    assert monolith.rows(USERS) == users  # the source is never touched


def test_copy_in_small_batches(monolith, service, seeded, monkeypatch):
    monkeypatch.setattr(data, "BATCH", 2)
    data.copy(monolith.sync, service.sync)
    assert_clean(monolith, service)


# --- verify finds each kind of difference, on either side ----------------------------------

def missing_run(source, _target, runs, _users):
    source.execute(delete(RUNS).where(RUNS.c.id == runs[1].id))
    return "runs", str(runs[1].id)


def extra_run(source, _target, runs, users):
    extra = add_run(source, users[1], "Extra", 5)
    return "runs", str(extra.id)


def changed_run(source, _target, runs, _users):
    source.execute(update(RUNS).where(RUNS.c.id == runs[0].id).values(distance=10001.0))
    return "runs", str(runs[0].id)


def changed_user(source, _target, _runs, users):
    source.execute(update(USERS).where(USERS.c.id == users[0].id).values(strava_token=None))
    return "users", str(users[0].id)


def missing_user(source, _target, _runs, users):
    source.execute(delete(USERS).where(USERS.c.id == users[2].id))
    return "users", str(users[2].id)


def extra_user(source, _target, _runs, _users):
    extra = sign_up(source, "dee@example.com")
    return "users", str(extra.id)


CHANGES = {"missing_run": missing_run, "extra_run": extra_run, "changed_run": changed_run,
           "changed_user": changed_user, "missing_user": missing_user,
           "extra_user": extra_user}


@pytest.mark.parametrize("changed_side", ["monolith", "service"])
@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_verify_finds_a_difference_and_copy_repairs_it(monolith, service, seeded, change,
                                                      changed_side):
    ada, bob, runs = seeded
    data.copy(monolith.sync, service.sync)
    users = [ada, bob, monolith.accounts.list_users()[-1]]
    users.sort(key=lambda u: u.email)
    edited, other = (monolith, service) if changed_side == "monolith" else (service, monolith)
    table, row_id = change(edited, other, runs, users)

    found = differences(monolith, service)
    difference = found[table]
    assert not difference.clean
    kind = change.__name__.split("_")[0]
    if kind == "changed":
        assert difference.differing == [row_id]
        assert difference.only_in_monolith == difference.only_in_service == []
        assert difference.monolith_count == difference.service_count
    else:
        only_in_edited = kind == "extra"
        expected_side = changed_side if only_in_edited else \
            ("service" if changed_side == "monolith" else "monolith")
        assert getattr(difference, f"only_in_{expected_side}") == [row_id]
        assert difference.differing == []
        assert difference.monolith_count != difference.service_count
    report = "\n".join(data.report(list(found.values())))
    assert "DIFFERENT" in report and row_id in report

    # The authoritative side is copied over the other: every difference is repaired.
    data.copy(monolith.sync, service.sync)
    assert_clean(monolith, service)
    assert service.rows(USERS) == monolith.rows(USERS)
    assert service.rows(RUNS) == monolith.rows(RUNS)


def test_a_user_gone_from_the_source_leaves_the_target_with_its_runs(monolith, service, seeded):
    ada, _, _ = seeded
    data.copy(monolith.sync, service.sync)
    monolith.accounts.delete_user(ada.id)  # and its runs, by cascade
    data.copy(monolith.sync, service.sync)
    assert_clean(monolith, service)
    assert ada.id not in service.rows(USERS)
    assert all(run["user_id"] != ada.id for run in service.rows(RUNS).values())


def test_a_user_re_registered_with_the_same_email_gets_copied(monolith, service, seeded):
    """The target still holds the old row with that email; the new one must not clash."""
    ada, _, _ = seeded
    data.copy(monolith.sync, service.sync)
    monolith.accounts.delete_user(ada.id)
    again = sign_up(monolith, "ada@example.com")
    data.copy(monolith.sync, service.sync)
    assert_clean(monolith, service)
    assert service.accounts.get_user(again.id).email == "ada@example.com"


def test_copy_from_the_service(monolith, service, seeded):
    ada, _, runs = seeded
    data.copy(monolith.sync, service.sync)
    # The service became authoritative and took writes the monolith never saw.
    eve = sign_up(service, "eve@example.com")
    new_run = add_run(service, eve, "Service-only run")
    service.execute(update(RUNS).where(RUNS.c.id == runs[0].id).values(name="Renamed"))
    service.execute(delete(RUNS).where(RUNS.c.id == runs[2].id))
    assert not all(d.clean for d in differences(monolith, service).values())

    data.copy(service.sync, monolith.sync)
    assert_clean(monolith, service)
    assert monolith.runs.get_run(eve.id, new_run.id).name == "Service-only run"
    assert monolith.runs.get_run(ada.id, runs[0].id).name == "Renamed"
    assert runs[2].id not in monolith.rows(RUNS)
    assert monolith.rows(USERS) == service.rows(USERS)


def test_the_report(monolith, service, seeded):
    clean = data.report(data.verify(monolith.sync, monolith.sync))
    assert clean == ["users  monolith       3  service       3  same",
                     "runs   monolith       3  service       3  same"]
    lines = data.report(data.verify(monolith.sync, service.sync))
    assert lines[0] == "users  monolith       3  service       0  DIFFERENT"
    assert lines[1].strip().startswith("only in monolith: ")


def test_the_report_shortens_long_lists(monolith, service):
    user = sign_up(monolith, "many@example.com")
    with monolith.engine.begin() as connection:
        for n in range(15):
            connection.execute(insert(RUNS).values(
                id=1000 + n, user_id=user.id, name=f"run {n}", distance=1000.0, start_date=WHEN,
                elapsed_time=300, average_speed=3.3, created_at=WHEN))
    runs_line = data.report(data.verify(monolith.sync, service.sync), shown=10)[-1]
    assert runs_line.strip().startswith("only in monolith: 1000, 1001")
    assert runs_line.endswith("(+5 more)")


def test_copying_from_an_empty_side_over_a_full_one_is_refused(monolith, service, seeded):
    """The wrong --from would otherwise delete every runner on the other side."""
    users, runs = monolith.rows(USERS), monolith.rows(RUNS)
    with pytest.raises(Conflict, match="would delete them all"):
        data.copy(service.sync, monolith.sync)
    assert monolith.rows(USERS) == users
    assert monolith.rows(RUNS) == runs


def test_copying_from_a_side_with_fewer_users_removes_the_rest(monolith, service, seeded):
    ada, bob, _ = seeded
    data.copy(monolith.sync, service.sync)
    service.accounts.delete_user(ada.id)
    service.accounts.delete_user(bob.id)
    data.copy(service.sync, monolith.sync)
    assert_clean(monolith, service)
    assert [user.email for user in monolith.accounts.list_users()] == ["cy@example.com"]
    assert monolith.rows(RUNS) == {}
