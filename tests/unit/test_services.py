"""LocalAccounts, LocalRuns and LocalRaces against a temporary SQLite database."""

import datetime as dt

import gevent
import pytest
from sqlalchemy import event

from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_engine, make_sessions
from monolith.races.service import LocalRaces
from monolith.runs.service import LocalRuns
from contracts.accounts import Profile, SignUp
from contracts.races import PlannedRunInput, RaceInput
from contracts.runs import RunInput
from shims.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationError

PASSWORD = "correct-horse-9"


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'unit.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    return make_sessions(engine)


@pytest.fixture
def accounts(sessions):
    return LocalAccounts(sessions, hash_method="pbkdf2:sha256:1000")


@pytest.fixture
def runs(sessions):
    return LocalRuns(sessions)


NOW = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)  # before every race day below


@pytest.fixture
def races(sessions):
    return LocalRaces(sessions, clock=lambda: NOW)


@pytest.fixture
def user(accounts):
    return accounts.sign_up(SignUp(email="ada@example.com", password=PASSWORD,
                                   profile=Profile(first_name="Ada")))


def run_input(day=1, strava_id=None, **changes):
    values = {"name": "run", "distance": 5000.0, "start_date": dt.datetime(2026, 5, day, 7),
              "elapsed_time": 1500, "strava_id": strava_id, **changes}
    return RunInput(**values)


# --- LocalAccounts -----------------------------------------------------------------------

def test_sign_up_and_authenticate(accounts, user):
    assert (user.email, user.first_name, user.is_admin) == ("ada@example.com", "Ada", False)
    assert accounts.authenticate(" ADA@example.com ", PASSWORD).id == user.id
    with pytest.raises(Unauthorized):
        accounts.authenticate("ada@example.com", "wrong-password")
    with pytest.raises(Unauthorized):
        accounts.authenticate("nobody@example.com", PASSWORD)


def test_sign_up_twice_is_a_conflict(accounts, user):
    with pytest.raises(Conflict) as caught:
        accounts.sign_up(SignUp(email="ada@example.com", password=PASSWORD, profile=Profile()))
    assert caught.value.field == "email"
    assert len(accounts.list_users()) == 1


def test_update_profile_and_unknown_users(accounts, user):
    updated = accounts.update_profile(user.id, Profile(first_name="Grace", age=40))
    assert (updated.first_name, updated.age) == ("Grace", 40)
    assert accounts.get_user(user.id) == updated
    for call in (lambda: accounts.get_user(999), lambda: accounts.update_profile(999, Profile()),
                 lambda: accounts.delete_user(999), lambda: accounts.get_user(2**64),
                 lambda: accounts.set_admin(999, True)):
        with pytest.raises(NotFound):
            call()


def test_the_last_admin_can_be_neither_demoted_nor_deleted(accounts, user):
    admin = accounts.sign_up(SignUp(email="boss@example.com", password=PASSWORD,
                                    profile=Profile()), is_admin=True)
    for call in (lambda: accounts.set_admin(admin.id, False),
                 lambda: accounts.delete_user(admin.id)):
        with pytest.raises(Conflict, match="last admin"):
            call()
    assert accounts.get_user(admin.id).is_admin
    accounts.set_admin(user.id, True)
    accounts.set_admin(admin.id, False)  # no longer the last one
    assert [u.email for u in accounts.list_users() if u.is_admin] == ["ada@example.com"]
    accounts.delete_user(admin.id)
    assert [u.id for u in accounts.list_users()] == [user.id]


def test_deleting_a_user_deletes_their_runs_and_entries(accounts, runs, races, user):
    other = accounts.sign_up(SignUp(email="o@example.com", password=PASSWORD,
                                    profile=Profile()))
    runs.add_run(user.id, run_input())
    race = races.create_race(user.id, RaceInput(name="r", date=dt.date(2027, 1, 1),
                                                distance=5000))
    races.join_race(user.id, race.id)
    accounts.delete_user(user.id)
    with pytest.raises(NotFound):
        runs.list_runs(user.id, 2026, 5)
    survived = races.get_race(other.id, race.id)
    assert (survived.runner_count, survived.created_by) == (0, None)


def test_strava_link(accounts, user):
    with pytest.raises(NotFound) as caught:
        accounts.strava_link(user.id)
    assert caught.value.field == "strava_token"
    assert accounts.link_strava(user.id, " tok ").strava_linked
    assert accounts.strava_link(user.id).token == "tok"
    assert [link.user_id for link in accounts.strava_links()] == [user.id]
    for bad in ("  ", "x" * 201):
        with pytest.raises(ValidationError):
            accounts.link_strava(user.id, bad)
    assert accounts.strava_link(user.id).token == "tok"
    assert not accounts.link_strava(user.id, None).strava_linked
    assert accounts.strava_links() == []


# --- LocalRuns ---------------------------------------------------------------------------

def test_runs_crud_and_ownership(accounts, runs, user):
    other = accounts.sign_up(SignUp(email="o@example.com", password=PASSWORD,
                                    profile=Profile()))
    mine = runs.add_run(user.id, run_input(day=2))
    assert runs.get_run(user.id, mine.id) == mine
    assert mine.average_speed == pytest.approx(5000 / 1500)
    for call in (lambda: runs.get_run(other.id, mine.id),
                 lambda: runs.update_run(other.id, mine.id, run_input()),
                 lambda: runs.delete_run(other.id, mine.id),
                 lambda: runs.get_run(user.id, 2**63)):
        with pytest.raises(NotFound):
            call()
    updated = runs.update_run(user.id, mine.id, run_input(day=3, distance=6000.0,
                                                          strava_id=42))
    assert (updated.distance, updated.strava_id) == (6000.0, None)  # edits never set strava_id
    runs.delete_run(user.id, mine.id)
    assert runs.list_runs(user.id, 2026, 5) == []
    with pytest.raises(NotFound):
        runs.add_run(999, run_input())


def test_list_runs_month_bounds(runs, user):
    runs.add_run(user.id, run_input(start_date=dt.datetime(2026, 12, 31, 23, 59, 59)))
    runs.add_run(user.id, run_input(start_date=dt.datetime(2027, 1, 1)))
    runs.add_run(user.id, run_input(start_date=dt.datetime(2026, 12, 1)))
    assert [r.start_date.day for r in runs.list_runs(user.id, 2026, 12)] == [1, 31]
    assert [r.start_date.year for r in runs.list_runs(user.id, 2027, 1)] == [2027]


def test_import_runs_dedups_by_strava_id_across_and_within_batches(runs, user):
    first = runs.import_runs(user.id, [run_input(strava_id=1), run_input(strava_id=2),
                                       run_input(strava_id=2), run_input()])
    assert (first.created, first.skipped) == (3, 1)
    second = runs.import_runs(user.id, [run_input(strava_id=1), run_input(strava_id=3)])
    assert (second.created, second.skipped) == (1, 1)
    assert sorted(r.strava_id or 0 for r in runs.list_runs(user.id, 2026, 5)) == [0, 1, 2, 3]


def test_the_same_strava_id_may_belong_to_two_runners(accounts, runs, user):
    other = accounts.sign_up(SignUp(email="o@example.com", password=PASSWORD,
                                    profile=Profile()))
    assert runs.import_runs(user.id, [run_input(strava_id=9)]).created == 1
    assert runs.import_runs(other.id, [run_input(strava_id=9)]).created == 1


def test_import_for_an_unknown_user_is_404(runs):
    with pytest.raises(NotFound):
        runs.import_runs(999, [run_input(strava_id=1)])


# --- LocalRaces --------------------------------------------------------------------------

@pytest.fixture
def race(races, user):
    return races.create_race(user.id, RaceInput(name="Half", date=dt.date(2027, 3, 1),
                                                distance=21097.5))


@pytest.mark.parametrize(("now", "open_"), [
    (dt.datetime(2026, 6, 2, 11, 59, tzinfo=dt.timezone.utc), True),  # still 1 June at UTC-12
    (dt.datetime(2026, 6, 2, 12, 0, tzinfo=dt.timezone.utc), False),  # 1 June over everywhere
    (dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=-11))), False),
])
def test_a_race_day_is_open_until_it_has_ended_everywhere_on_earth(sessions, user, now, open_):
    early = LocalRaces(sessions, clock=lambda: NOW)
    race = early.create_race(user.id, RaceInput(name="r", date=dt.date(2026, 6, 1),
                                                distance=5000.0))
    later = LocalRaces(sessions, clock=lambda: now)
    again = RaceInput(name="again", date=race.date, distance=5000.0)
    if open_:
        assert later.create_race(user.id, again).date == race.date
        assert later.join_race(user.id, race.id).joined
        return
    with pytest.raises(Conflict, match="today or later") as created:
        later.create_race(user.id, again)
    with pytest.raises(Conflict, match="in the past") as joined:
        later.join_race(user.id, race.id)
    assert created.value.field == joined.value.field == "date"
    assert not later.get_race(user.id, race.id).joined


def test_join_leave_and_plan(races, user, race):
    with pytest.raises(Conflict, match="join race"):
        races.plan(user.id, race.id)
    assert races.join_race(user.id, race.id).joined
    with pytest.raises(Conflict, match="already joined"):
        races.join_race(user.id, race.id)
    planned = races.add_planned_run(user.id, race.id, PlannedRunInput(
        date=dt.date(2027, 3, 1), distance=5000))
    with pytest.raises(ValidationError) as caught:
        races.add_planned_run(user.id, race.id, PlannedRunInput(date=dt.date(2027, 3, 2),
                                                                distance=5000))
    assert caught.value.field == "date"
    assert races.plan(user.id, race.id) == [planned]
    assert not races.leave_race(user.id, race.id).joined
    with pytest.raises(Conflict, match="not joined"):
        races.leave_race(user.id, race.id)
    races.join_race(user.id, race.id)
    assert races.plan(user.id, race.id) == []


def test_delete_race_rights(accounts, races, user, race):
    other = accounts.sign_up(SignUp(email="o@example.com", password=PASSWORD,
                                    profile=Profile()))
    with pytest.raises(Forbidden):
        races.delete_race(other.id, race.id)
    accounts.set_admin(other.id, True)
    races.delete_race(other.id, race.id)
    with pytest.raises(NotFound):
        races.get_race(user.id, race.id)


def test_generate_plan(races, user, race):
    races.join_race(user.id, race.id)
    plan = races.generate_plan(user.id, race.id, 3, dt.date(2027, 1, 4))
    assert len(plan) == 3 * 8 and plan[-1].date < race.date
    again = races.generate_plan(user.id, race.id, 2, dt.date(2027, 1, 4))
    assert races.plan(user.id, race.id) == again and len(again) == 2 * 8
    for runs_per_week in (0, 8):
        with pytest.raises(ValidationError):
            races.generate_plan(user.id, race.id, runs_per_week, dt.date(2027, 1, 4))
    with pytest.raises(Conflict, match="no time left"):
        races.generate_plan(user.id, race.id, 3, race.date)
    assert races.plan(user.id, race.id) == again


def test_delete_planned_run_only_my_own(accounts, races, user, race):
    other = accounts.sign_up(SignUp(email="o@example.com", password=PASSWORD,
                                    profile=Profile()))
    races.join_race(user.id, race.id)
    races.join_race(other.id, race.id)
    theirs = races.add_planned_run(other.id, race.id, PlannedRunInput(
        date=dt.date(2027, 2, 1), distance=5000))
    with pytest.raises(NotFound):
        races.delete_planned_run(user.id, race.id, theirs.id)
    races.delete_planned_run(other.id, race.id, theirs.id)
    assert races.plan(other.id, race.id) == []


# --- concurrency under gevent ------------------------------------------------------------

def test_two_greenlets_importing_the_same_strava_ids_create_each_run_once(engine, runs, user):
    """Both read 'none of these exist' before either writes; the loser must retry, not fail."""
    def yield_after_reads(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            gevent.sleep(0.01)  # as a networked database would, under gevent
    event.listen(engine, "after_cursor_execute", yield_after_reads)

    batch = [run_input(day=n, strava_id=n) for n in range(1, 11)]
    greenlets = [gevent.spawn(runs.import_runs, user.id, batch) for _ in range(2)]
    gevent.joinall(greenlets, raise_error=True, timeout=30)
    counts = sorted(g.value.created for g in greenlets)
    assert counts == [0, 10]
    stored = runs.list_runs(user.id, 2026, 5)
    assert sorted(r.strava_id for r in stored) == list(range(1, 11))


def test_two_greenlets_signing_up_the_same_email_make_one_account(engine, accounts):
    def yield_after_reads(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            gevent.sleep(0.01)
    event.listen(engine, "after_cursor_execute", yield_after_reads)

    def sign_up():
        try:
            return accounts.sign_up(SignUp(email="race@example.com", password=PASSWORD,
                                           profile=Profile()))
        except Conflict as exc:
            return exc
    greenlets = [gevent.spawn(sign_up) for _ in range(2)]
    gevent.joinall(greenlets, raise_error=True, timeout=30)
    outcomes = sorted(type(g.value).__name__ for g in greenlets)
    assert outcomes == ["Conflict", "UserRecord"]
    assert [u.email for u in accounts.list_users()] == ["race@example.com"]
