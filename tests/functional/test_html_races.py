"""HTML races pages: list and create, join and leave, the training plan, delete."""

import datetime as dt

import pytest
from sqlalchemy import text

from monolith.wiring import features
from contracts.races import PlannedRunInput, RaceInput
from tests.conftest import PASSWORD

IN_TEN_WEEKS = dt.date.today() + dt.timedelta(weeks=10)


def login(web, user):
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = user.email, PASSWORD
    form.submit()


@pytest.fixture
def runner(web, make_user):
    user = make_user("runner@example.com")
    login(web, user)
    return user


def make_race(user, name="City 10K", date=IN_TEN_WEEKS, distance=10000.0, joined=False):
    races = features().races
    race = races.create_race(user.id, RaceInput(name=name, date=date, distance=distance,
                                                location="Riverside"))
    return races.join_race(user.id, race.id) if joined else race


def form_for(page, action):
    return next(f for f in page.forms.values() if f.action == action)


def csrf_token(web):
    return web.get("/races").forms["create-race"]["csrf_token"].value


def plan_of(user, race):
    return features().races.plan(user.id, race.id)


def race_count(user):
    return len(features().races.list_races(user.id))


# --- list and create -----------------------------------------------------------------------


def test_list_shows_races_with_counts_and_joined_status(web, runner, make_user):
    other = make_user()
    make_race(other, "<b>Marathon</b>", distance=42195.0, joined=True)
    make_race(runner, "Park run", joined=True)
    res = web.get("/races")
    assert "&lt;b&gt;Marathon&lt;/b&gt;" in res.text  # escaped
    assert "42.20" in res.text and "10.00" in res.text
    rows = res.text.split("<tr>")[2:]
    assert "Marathon" in rows[0] and "<td>\N{EN DASH}</td>" in rows[0]
    assert "Park run" in rows[1] and "<td>joined</td>" in rows[1]


def test_create_a_race(web, runner):
    form = web.get("/races").forms["create-race"]
    form["name"], form["date"], form["distance"] = "Harbour Half", "2083-04-11", "21097.5"
    form["location"] = "Harbour"
    res = form.submit()
    [race] = features().races.list_races(runner.id)
    assert res.location.endswith(f"/races/{race.id}")
    page = res.follow()
    assert "Created race “Harbour Half”." in page.text
    assert "Sunday 11 April 2083" in page.text and "21.10 km" in page.text
    assert (race.name, race.date, race.distance, race.location, race.created_by) == (
        "Harbour Half", dt.date(2083, 4, 11), 21097.5, "Harbour", runner.id)


@pytest.mark.parametrize(("values", "message"), [
    ({"name": ""}, "name is required"),
    ({"date": ""}, "date is required"),
    ({"date": "next sunday"}, "date must be a date like 2026-05-17"),
    ({"distance": "far"}, "distance must be a number"),
    ({"distance": "50"}, "distance must be at least 100"),
    ({"location": "x" * 201}, "location must be at most 200 characters"),
])
def test_create_refuses_bad_input_and_writes_nothing(web, runner, values, message):
    form = web.get("/races").forms["create-race"]
    good = {"name": "Harbour Half", "date": "2083-04-11", "distance": "21097.5"}
    for name, value in (good | values).items():
        form[name] = value
    res = form.submit(status=400)
    assert message in res.text
    if "name" not in values:
        assert 'value="Harbour Half"' in res.text
    assert race_count(runner) == 0


def test_an_empty_race_form_names_every_missing_field(web, runner):
    res = web.post("/races", {"csrf_token": csrf_token(web)}, status=400)
    for field in ("name", "date", "distance"):
        assert f'id="{field}-error">{field} is required<' in res.text
    assert race_count(runner) == 0


def test_create_without_csrf_is_refused(web, runner):
    web.post("/races", {"name": "x", "date": "2083-01-01", "distance": "5000"}, status=400)
    assert race_count(runner) == 0


def test_races_need_login(web):
    assert "/login" in web.get("/races").location
    assert "/login" in web.get("/races/1").location


# --- detail, join, leave -------------------------------------------------------------------


def test_unknown_race_is_404(web, runner):
    res = web.get("/races/999", status=404)
    assert "race 999 not found" in res.text
    token = csrf_token(web)
    for action in ("join", "leave", "delete", "plan", "plan/generate", "plan/1/delete"):
        web.post(f"/races/999/{action}", {"csrf_token": token, "runs_per_week": "3"},
                 status=404)


def test_join_and_leave(web, runner, make_user):
    race = make_race(make_user())
    page = web.get(f"/races/{race.id}")
    assert "0 runners" in page.text and "Your training plan" not in page.text
    assert f"/races/{race.id}/delete" not in page.text  # not the creator
    res = form_for(page, f"/races/{race.id}/join").submit()
    page = res.follow()
    assert "You joined “City 10K”" in page.text
    assert "· 1 runner<" in page.text and "Your training plan" in page.text
    assert features().races.get_race(runner.id, race.id).joined

    res = form_for(page, f"/races/{race.id}/leave").submit()
    assert "You left “City 10K”" in res.follow().text
    assert not features().races.get_race(runner.id, race.id).joined


def test_a_race_in_the_past_cannot_be_created(web, runner):
    form = web.get("/races").forms["create-race"]
    past = dt.date.today() - dt.timedelta(days=2)
    form["name"], form["date"], form["distance"] = "Yesterday's 10K", past.isoformat(), "10000"
    res = form.submit(status=409)
    assert f'id="date-error">date must be today or later; {past} has passed<' in res.text
    assert race_count(runner) == 0


def test_a_race_in_the_past_cannot_be_joined(web, app, runner):
    race = make_race(runner)
    past = dt.date.today() - dt.timedelta(days=2)
    with app.extensions["runnerly_engine"].begin() as connection:  # created ahead, now past
        connection.execute(text("UPDATE races SET date = :day WHERE id = :id"),
                           {"day": past.isoformat(), "id": race.id})
    page = web.get(f"/races/{race.id}")
    res = form_for(page, f"/races/{race.id}/join").submit(status=409)
    assert f"was on {past}: a race in the past cannot be joined" in res.text
    assert "<h1>City 10K</h1>" in res.text  # said on the race's own page
    assert not features().races.get_race(runner.id, race.id).joined


def test_joining_twice_or_leaving_unjoined_is_a_409(web, runner):
    race = make_race(runner, joined=True)
    token = csrf_token(web)
    res = web.post(f"/races/{race.id}/join", {"csrf_token": token}, status=409)
    assert "already joined" in res.text
    features().races.leave_race(runner.id, race.id)
    res = web.post(f"/races/{race.id}/leave", {"csrf_token": token}, status=409)
    assert "have not joined" in res.text


# --- the training plan ---------------------------------------------------------------------


def test_plan_a_run_and_remove_it(web, runner):
    race = make_race(runner, joined=True)
    form = web.get(f"/races/{race.id}").forms["plan-run"]
    planned_day = dt.date.today() + dt.timedelta(days=3)
    form["date"], form["distance"], form["description"] = planned_day.isoformat(), "6000", "hills"
    res = form.submit()
    assert res.location.endswith(f"/races/{race.id}")
    page = res.follow()
    assert "hills" in page.text and "6.00" in page.text
    [planned] = plan_of(runner, race)
    assert (planned.date, planned.distance, planned.description) == (planned_day, 6000.0, "hills")

    remove = form_for(page, f"/races/{race.id}/plan/{planned.id}/delete")
    assert "Removed the planned run." in remove.submit().follow().text
    assert plan_of(runner, race) == []


@pytest.mark.parametrize(("values", "message"), [
    ({"date": ""}, "date is required"),
    ({"date": "soon"}, "date must be a date like"),
    ({"distance": "six"}, "distance must be a number"),
    ({"distance": "10"}, "distance must be at least 100"),
    ({"date": (IN_TEN_WEEKS + dt.timedelta(days=1)).isoformat()},
     "date must be on or before the race day"),
])
def test_plan_a_run_refuses_bad_input(web, runner, values, message):
    race = make_race(runner, joined=True)
    form = web.get(f"/races/{race.id}").forms["plan-run"]
    good = {"date": dt.date.today().isoformat(), "distance": "6000", "description": "tempo"}
    for name, value in (good | values).items():
        form[name] = value
    res = form.submit(status=400)
    assert message in res.text
    assert 'value="tempo"' in res.text
    assert plan_of(runner, race) == []


def test_planning_before_joining_is_a_409(web, runner):
    race = make_race(runner)
    token = csrf_token(web)
    res = web.post(f"/races/{race.id}/plan", {"csrf_token": token, "date": "2026-01-01",
                                               "distance": "5000"}, status=409)
    assert f"join race {race.id} before planning" in res.text
    web.post(f"/races/{race.id}/plan/generate", {"csrf_token": token, "runs_per_week": "3"},
             status=409)


def test_generate_a_plan_replaces_the_old_one(web, runner):
    race = make_race(runner, joined=True)
    features().races.add_planned_run(runner.id, race.id, PlannedRunInput(
        date=dt.date.today(), distance=3000.0, description="old"))
    form = web.get(f"/races/{race.id}").forms["generate-plan"]
    assert form["runs_per_week"].value == "3"
    form["runs_per_week"] = "4"
    res = form.submit()
    plan = plan_of(runner, race)
    assert len(plan) == 10 * 4
    assert all(p.description != "old" for p in plan)
    assert plan[0].date == dt.date.today()
    page = res.follow()
    assert f"Generated a plan of {len(plan)} runs, replacing the previous plan." in page.text
    assert "week 1: easy run" in page.text and "week 10: long run (taper)" in page.text


def test_a_first_plan_is_not_said_to_replace_one(web, runner):
    race = make_race(runner, joined=True)
    page = web.get(f"/races/{race.id}")
    assert "Replaces your plan" not in page.text
    assert "A plan that builds up week by week" in page.text
    page = page.forms["generate-plan"].submit().follow()
    assert f"Generated a plan of {len(plan_of(runner, race))} runs." in page.text
    assert "replacing" not in page.text
    assert "Replaces your plan with one that builds up" in page.text  # there is one now


@pytest.mark.parametrize(("value", "message"), [
    ("", "runs per week is required"),
    ("0", "runs per week must be at least 1"),
    ("8", "runs per week must be at most 7"),
    ("three", "runs per week must be an integer"),
    ("2.5", "runs per week must be an integer"),
])
def test_generate_refuses_bad_runs_per_week(web, runner, value, message):
    race = make_race(runner, joined=True)
    features().races.add_planned_run(runner.id, race.id, PlannedRunInput(
        date=dt.date.today(), distance=3000.0, description="kept"))
    form = web.get(f"/races/{race.id}").forms["generate-plan"]
    form["runs_per_week"] = value
    res = form.submit(status=400)
    assert message in res.text
    assert [p.description for p in plan_of(runner, race)] == ["kept"]


def test_generate_for_a_race_today_is_a_409(web, runner):
    race = make_race(runner, date=dt.date.today(), joined=True)
    res = web.get(f"/races/{race.id}").forms["generate-plan"].submit(status=409)
    assert "no time left to plan" in res.text
    assert plan_of(runner, race) == []


def test_unknown_planned_run_is_404(web, runner, make_user):
    race = make_race(runner, joined=True)
    other = make_user()
    theirs = make_race(other, "Theirs", joined=True)
    planned = features().races.add_planned_run(other.id, theirs.id, PlannedRunInput(
        date=dt.date.today(), distance=3000.0))
    token = csrf_token(web)
    web.post(f"/races/{race.id}/plan/{planned.id}/delete", {"csrf_token": token}, status=404)
    assert plan_of(other, theirs) == [planned]


# --- delete --------------------------------------------------------------------------------


def test_creator_deletes_a_race(web, runner):
    race = make_race(runner)
    page = web.get(f"/races/{race.id}")
    res = form_for(page, f"/races/{race.id}/delete").submit()
    assert res.location.endswith("/races")
    assert "Deleted race “City 10K”." in res.follow().text
    assert race_count(runner) == 0


def test_another_runner_may_not_delete_a_race(web, runner, make_user):
    race = make_race(make_user())
    res = web.post(f"/races/{race.id}/delete", {"csrf_token": csrf_token(web)}, status=403)
    assert "only the runner who created race" in res.text
    assert race_count(runner) == 1


def test_admin_deletes_any_race(web, make_user):
    race = make_race(make_user())
    login(web, make_user(admin=True))
    page = web.get(f"/races/{race.id}")
    form_for(page, f"/races/{race.id}/delete").submit()
    assert features().races.list_races(race.created_by) == []
