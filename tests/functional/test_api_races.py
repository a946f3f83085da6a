"""JSON API for races and training plans."""

import datetime as dt

import pytest

from sqlalchemy import text

from monolith.wiring import features
from contracts.races import PlannedRunInput, RaceInput
from support import assert_error

# Race days far enough ahead never to pass (a race in the past is refused), in a year whose
# calendar is 2027's: the same weekdays.
RACE = {"name": "Paris Marathon", "date": "2083-04-04", "distance": 42195, "location": "Paris"}
PLANNED = {"date": "2083-03-01", "distance": 8000, "description": "easy"}


@pytest.fixture
def runner(make_user):
    return make_user("runner@example.com")


@pytest.fixture
def other(make_user):
    return make_user("other@example.com")


@pytest.fixture
def headers(runner, api_headers):
    return api_headers(runner)


@pytest.fixture
def race(runner):
    return features().races.create_race(runner.id, RaceInput.parse(RACE))


def races():
    return features().races.list_races(0)


def entry(user, race):
    return features().races.get_race(user.id, race.id).joined


def plan_of(user, race):
    return features().races.plan(user.id, race.id)


def join(user, race):
    features().races.join_race(user.id, race.id)


# --- list, create, read ------------------------------------------------------------------

def test_create_and_list_races(web, runner, other, headers, api_headers):
    created = web.post_json("/api/races", RACE, headers=headers)
    assert created.status_int == 201
    race = created.json
    assert (race["name"], race["date"], race["distance"], race["location"]) == \
        ("Paris Marathon", "2083-04-04", 42195.0, "Paris")
    assert (race["created_by"], race["runner_count"], race["joined"]) == (str(runner.id), 0,
                                                                       False)
    listed = web.get("/api/races", headers=api_headers(other)).json["races"]
    assert [r["id"] for r in listed] == [race["id"]]
    assert web.get(f"/api/races/{race['id']}", headers=headers).json == race


@pytest.mark.parametrize("changes, field, mentions", [
    ({"name": ""}, "name", ["required"]),
    ({"name": 12}, "name", ["string"]),
    ({"date": "04/04/2083"}, "date", ["date like"]),
    ({"date": None}, "date", ["required"]),
    ({"date": 20830404}, "date", ["date like"]),
    ({"distance": 99}, "distance", ["at least 100"]),
    ({"distance": "marathon"}, "distance", ["number"]),
    ({"distance": True}, "distance", ["number"]),
    ({"distance": 1_000_001}, "distance", ["at most"]),
    ({"location": ["Paris"]}, "location", ["string"]),
    ({"location": "x" * 201}, "location", ["at most 200"]),
    ({"runner_count": 5}, "runner_count", ["unknown"]),
])
def test_create_race_refuses_bad_input(web, runner, headers, changes, field, mentions):
    response = web.post_json("/api/races", {**RACE, **changes}, headers=headers,
                             expect_errors=True)
    assert_error(response, 400, field=field, mentions=mentions)
    assert races() == []


def days_from_today(days):
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


def test_a_race_in_the_past_cannot_be_created(web, runner, headers):
    past = days_from_today(-2)  # over everywhere on Earth, whatever the hour
    response = web.post_json("/api/races", {**RACE, "date": past}, headers=headers,
                             expect_errors=True)
    assert_error(response, 409, field="date", mentions=["today or later", past])
    assert races() == []


def test_a_race_today_can_be_created(web, runner, headers):
    created = web.post_json("/api/races", {**RACE, "date": days_from_today(0)}, headers=headers)
    assert created.json["date"] == days_from_today(0)


def move_race(app, race, day):
    """The race day as time would have it: created ahead, since passed."""
    with app.extensions["runnerly_engine"].begin() as connection:
        connection.execute(text("UPDATE races SET date = :day WHERE id = :id"),
                           {"day": day, "id": race.id})


def test_a_race_in_the_past_cannot_be_joined(web, app, race, runner, headers):
    move_race(app, race, days_from_today(-2))
    response = web.post(f"/api/races/{race.id}/join", headers=headers, expect_errors=True)
    assert_error(response, 409, field="date", mentions=["in the past", days_from_today(-2)])
    assert not entry(runner, race)


@pytest.mark.parametrize("raw", ["", "[]", '"race"', "{", '{"name": "x", "date": "2083-04-04", '
                                                          '"distance": NaN}'])
def test_create_race_refuses_a_bad_body(web, runner, headers, raw):
    response = web.post("/api/races", raw, headers=headers, content_type="application/json",
                        expect_errors=True)
    assert_error(response, 400)
    assert races() == []


def test_races_need_a_login(web, race):
    assert_error(web.get("/api/races", expect_errors=True), 401)
    assert_error(web.post_json("/api/races", RACE, expect_errors=True), 401)
    assert_error(web.post(f"/api/races/{race.id}/join", expect_errors=True), 401)
    assert races() == [race]


@pytest.mark.parametrize("race_id", ["999", str(2**64)])
def test_unknown_race_is_404_on_every_route(web, runner, headers, race_id):
    for method, path in [("get", ""), ("delete", ""), ("post", "/join"), ("post", "/leave"),
                         ("get", "/plan"), ("delete", "/plan/1")]:
        response = getattr(web, method)(f"/api/races/{race_id}{path}", headers=headers,
                                        expect_errors=True)
        assert_error(response, 404, mentions=[f"race {race_id} not found"])
    for path, body in [("/plan", PLANNED), ("/plan/generate", {"runs_per_week": 3})]:
        response = web.post_json(f"/api/races/{race_id}{path}", body, headers=headers,
                                 expect_errors=True)
        assert_error(response, 404)


# --- delete ------------------------------------------------------------------------------

def test_the_creator_deletes_a_race(web, race, headers):
    assert web.delete(f"/api/races/{race.id}", headers=headers).status_int == 204
    assert races() == []


def test_another_runner_may_not_delete_a_race_but_an_admin_may(web, race, other, make_user,
                                                              api_headers):
    response = web.delete(f"/api/races/{race.id}", headers=api_headers(other),
                          expect_errors=True)
    assert_error(response, 403, mentions=["created", "admin"])
    assert races() == [race]
    admin = make_user("admin@example.com", admin=True)
    assert web.delete(f"/api/races/{race.id}", headers=api_headers(admin)).status_int == 204
    assert races() == []


# --- join and leave ----------------------------------------------------------------------

def test_join_and_leave(web, race, runner, headers):
    joined = web.post(f"/api/races/{race.id}/join", headers=headers).json
    assert (joined["joined"], joined["runner_count"]) == (True, 1)
    left = web.post(f"/api/races/{race.id}/leave", headers=headers).json
    assert (left["joined"], left["runner_count"]) == (False, 0)
    assert not entry(runner, race)


def test_join_twice_is_409_and_counts_once(web, race, runner, headers):
    web.post(f"/api/races/{race.id}/join", headers=headers)
    response = web.post(f"/api/races/{race.id}/join", headers=headers, expect_errors=True)
    assert_error(response, 409, mentions=["already joined"])
    assert features().races.get_race(runner.id, race.id).runner_count == 1


def test_leave_without_joining_is_409(web, race, runner, other, headers):
    join(other, race)
    response = web.post(f"/api/races/{race.id}/leave", headers=headers, expect_errors=True)
    assert_error(response, 409, mentions=["not joined"])
    assert features().races.get_race(other.id, race.id).runner_count == 1


def test_leaving_drops_my_plan_but_not_anyone_elses(web, race, runner, other, headers):
    for user in (runner, other):
        join(user, race)
        features().races.add_planned_run(user.id, race.id, PlannedRunInput.parse(PLANNED))
    web.post(f"/api/races/{race.id}/leave", headers=headers)
    join(runner, race)
    assert plan_of(runner, race) == []
    assert len(plan_of(other, race)) == 1


# --- the plan ----------------------------------------------------------------------------

def test_plan_before_joining_is_409_and_nothing_is_planned(web, race, runner, headers):
    assert_error(web.get(f"/api/races/{race.id}/plan", headers=headers, expect_errors=True),
                 409, mentions=["join race"])
    for path, body in [("/plan", PLANNED), ("/plan/generate", {"runs_per_week": 3,
                                                               "start": "2083-01-01"})]:
        response = web.post_json(f"/api/races/{race.id}{path}", body, headers=headers,
                                 expect_errors=True)
        assert_error(response, 409, mentions=["join race"])
    join(runner, race)
    assert plan_of(runner, race) == []


def test_add_and_list_planned_runs(web, race, runner, headers):
    join(runner, race)
    added = web.post_json(f"/api/races/{race.id}/plan", PLANNED, headers=headers)
    assert added.status_int == 201
    assert (added.json["date"], added.json["distance"], added.json["description"]) == \
        ("2083-03-01", 8000.0, "easy")
    on_race_day = web.post_json(f"/api/races/{race.id}/plan", {**PLANNED, "date": RACE["date"]},
                                headers=headers)
    assert on_race_day.status_int == 201
    plan = web.get(f"/api/races/{race.id}/plan", headers=headers).json
    assert plan["race_id"] == str(race.id)
    assert [p["date"] for p in plan["plan"]] == ["2083-03-01", "2083-04-04"]


@pytest.mark.parametrize("changes, status, field, mentions", [
    ({"date": "2083-04-05"}, 400, "date", ["race day", "2083-04-04"]),
    ({"date": "tomorrow"}, 400, "date", ["date like"]),
    ({"distance": 50}, 400, "distance", ["at least 100"]),
    ({"distance": "far"}, 400, "distance", ["number"]),
    ({"description": 5}, 400, "description", ["string"]),
    ({"pace": "easy"}, 400, "pace", ["unknown"]),
])
def test_add_planned_run_refuses_bad_input(web, race, runner, headers, changes, status, field,
                                           mentions):
    join(runner, race)
    response = web.post_json(f"/api/races/{race.id}/plan", {**PLANNED, **changes},
                             headers=headers, expect_errors=True)
    assert_error(response, status, field=field, mentions=mentions)
    assert plan_of(runner, race) == []


@pytest.mark.parametrize("raw", ["", "[]", "{", '{"date": "2083-03-01", "distance": Infinity}'])
def test_add_planned_run_refuses_a_bad_body(web, race, runner, headers, raw):
    join(runner, race)
    response = web.post(f"/api/races/{race.id}/plan", raw, headers=headers,
                        content_type="application/json", expect_errors=True)
    assert_error(response, 400)
    assert plan_of(runner, race) == []


def test_delete_a_planned_run(web, race, runner, other, headers):
    join(runner, race)
    join(other, race)
    mine = features().races.add_planned_run(runner.id, race.id, PlannedRunInput.parse(PLANNED))
    theirs = features().races.add_planned_run(other.id, race.id, PlannedRunInput.parse(PLANNED))
    response = web.delete(f"/api/races/{race.id}/plan/{theirs.id}", headers=headers,
                          expect_errors=True)
    assert_error(response, 404, mentions=[f"planned run {theirs.id} not found"])
    for planned_id in (999, 2**64):
        response = web.delete(f"/api/races/{race.id}/plan/{planned_id}", headers=headers,
                              expect_errors=True)
        assert_error(response, 404)
    assert web.delete(f"/api/races/{race.id}/plan/{mine.id}", headers=headers).status_int == 204
    assert plan_of(runner, race) == []
    assert plan_of(other, race) == [theirs]


def test_a_planned_run_of_another_race_is_404_under_this_one(web, race, runner, headers):
    second = features().races.create_race(runner.id, RaceInput.parse({**RACE, "name": "10k"}))
    join(runner, race)
    join(runner, second)
    planned = features().races.add_planned_run(runner.id, second.id,
                                                PlannedRunInput.parse(PLANNED))
    response = web.delete(f"/api/races/{race.id}/plan/{planned.id}", headers=headers,
                          expect_errors=True)
    assert_error(response, 404)
    assert plan_of(runner, second) == [planned]


# --- generated plans ---------------------------------------------------------------------

def test_generate_a_plan_replaces_the_old_one(web, race, runner, headers):
    join(runner, race)
    features().races.add_planned_run(runner.id, race.id, PlannedRunInput.parse(PLANNED))
    response = web.post_json(f"/api/races/{race.id}/plan/generate",
                             {"runs_per_week": 3, "start": "2083-01-04"}, headers=headers)
    assert response.status_int == 201
    plan = response.json["plan"]
    dates = [dt.date.fromisoformat(p["date"]) for p in plan]
    assert dates == sorted(dates)
    assert dt.date(2083, 1, 4) <= dates[0] and dates[-1] < dt.date(2083, 4, 4)
    assert len(plan) == 3 * 12  # 90 days: 12 whole weeks, 3 runs each
    assert [str(p.id) for p in plan_of(runner, race)] == [p["id"] for p in plan]
    assert "(taper)" in plan[-1]["description"]


def test_generate_defaults_the_start_to_today(web, runner, headers):
    race_day = dt.date.today() + dt.timedelta(days=30)
    race = features().races.create_race(runner.id, RaceInput.parse(
        {**RACE, "date": race_day.isoformat(), "distance": 10000}))
    join(runner, race)
    plan = web.post_json(f"/api/races/{race.id}/plan/generate", {"runs_per_week": 2},
                         headers=headers).json["plan"]
    assert plan[0]["date"] == dt.date.today().isoformat()


def test_generate_for_a_race_far_away_ends_the_plan_near_race_day(web, runner, headers):
    race = features().races.create_race(runner.id, RaceInput.parse(
        {**RACE, "date": "2085-06-03"}))
    join(runner, race)
    plan = web.post_json(f"/api/races/{race.id}/plan/generate",
                         {"runs_per_week": 2, "start": "2083-01-04"}, headers=headers).json["plan"]
    last = dt.date.fromisoformat(plan[-1]["date"])
    assert dt.date(2085, 5, 27) <= last < dt.date(2085, 6, 3)
    assert "(taper)" in plan[-1]["description"]


@pytest.mark.parametrize("body, field, mentions", [
    ({}, "runs_per_week", ["required"]),
    ({"runs_per_week": 0}, "runs_per_week", ["at least 1"]),
    ({"runs_per_week": 8}, "runs_per_week", ["at most 7"]),
    ({"runs_per_week": True}, "runs_per_week", ["integer"]),
    ({"runs_per_week": "three"}, "runs_per_week", ["integer"]),
    ({"runs_per_week": 2.5}, "runs_per_week", ["integer"]),
    ({"runs_per_week": 3, "start": "soon"}, "start", ["date like"]),
    ({"runs_per_week": 3, "weeks": 10}, "weeks", ["unknown"]),
])
def test_generate_refuses_bad_input_and_keeps_the_plan(web, race, runner, headers, body, field,
                                                       mentions):
    join(runner, race)
    kept = features().races.add_planned_run(runner.id, race.id, PlannedRunInput.parse(PLANNED))
    response = web.post_json(f"/api/races/{race.id}/plan/generate", body, headers=headers,
                             expect_errors=True)
    assert_error(response, 400, field=field, mentions=mentions)
    assert plan_of(runner, race) == [kept]


def test_generate_after_race_day_is_409_and_keeps_the_plan(web, race, runner, headers):
    join(runner, race)
    kept = features().races.add_planned_run(runner.id, race.id, PlannedRunInput.parse(PLANNED))
    response = web.post_json(f"/api/races/{race.id}/plan/generate",
                             {"runs_per_week": 3, "start": "2083-04-04"}, headers=headers,
                             expect_errors=True)
    assert_error(response, 409, mentions=["no time left"])
    assert plan_of(runner, race) == [kept]


@pytest.mark.parametrize("raw", ["", "[3]", "3", '{"runs_per_week": NaN}'])
def test_generate_refuses_a_bad_body(web, race, runner, headers, raw):
    join(runner, race)
    response = web.post(f"/api/races/{race.id}/plan/generate", raw, headers=headers,
                        content_type="application/json", expect_errors=True)
    assert_error(response, 400)
    assert plan_of(runner, race) == []


def test_wrong_method_on_races_is_405(web, race, headers):
    response = web.put_json(f"/api/races/{race.id}", RACE, headers=headers, expect_errors=True)
    assert_error(response, 405)
    assert races() == [race]
