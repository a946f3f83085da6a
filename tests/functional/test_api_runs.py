"""JSON API for runs: a runner's own runs, listed per month, added, edited and deleted."""

import datetime as dt

import pytest

from monolith.wiring import features
from contracts.runs import RunInput
from support import assert_error

RUN = {"name": "Morning tempo", "distance": 10000, "start_date": "2026-05-17T07:30:00",
       "elapsed_time": 2700, "average_heartrate": 152, "total_elevation_gain": 40}


def runs_of(user, year=2026, month=5):
    return features().runs.list_runs(user.id, year, month)


def add(user, **changes):
    return features().runs.add_run(user.id, RunInput.parse({**RUN, **changes}))


@pytest.fixture
def runner(make_user):
    return make_user("runner@example.com")


@pytest.fixture
def other(make_user):
    return make_user("other@example.com")


@pytest.fixture
def headers(runner, api_headers):
    return api_headers(runner)


# --- GET /api/runs -----------------------------------------------------------------------

def test_list_runs_of_one_month_only_mine_in_date_order(web, runner, other, headers):
    late = add(runner, name="Late", start_date="2026-05-31T23:59:59")
    early = add(runner, name="Early", start_date="2026-05-01T00:00:00")
    add(runner, name="June", start_date="2026-06-01T00:00:00")
    add(other, name="Not mine", start_date="2026-05-10T08:00:00")
    body = web.get("/api/runs?year=2026&month=5", headers=headers).json
    assert (body["year"], body["month"]) == (2026, 5)
    assert [run["id"] for run in body["runs"]] == [str(early.id), str(late.id)]
    assert body["runs"][0]["start_date"] == "2026-05-01T00:00:00+00:00"


def test_list_runs_defaults_to_the_current_month(web, runner, headers):
    today = dt.date.today()
    add(runner, start_date=f"{today.isoformat()}T06:00:00")
    body = web.get("/api/runs", headers=headers).json
    assert (body["year"], body["month"]) == (today.year, today.month)
    assert len(body["runs"]) == 1


@pytest.mark.parametrize("query, field", [
    ("year=2026&month=13", "month"),
    ("year=2026&month=0", "month"),
    ("year=1969&month=5", "year"),
    ("year=abc&month=5", "year"),
    ("year=2026&month=5.5", "month"),
    ("year=&month=5", "year"),
    ("year=2026&month=NaN", "month"),
])
def test_list_runs_refuses_a_bad_month(web, headers, query, field):
    assert_error(web.get(f"/api/runs?{query}", headers=headers, expect_errors=True), 400,
                 field=field)


def test_list_runs_needs_a_login(web, runner):
    assert_error(web.get("/api/runs", expect_errors=True), 401)


# --- POST /api/runs ----------------------------------------------------------------------

def test_add_run(web, runner, headers):
    response = web.post_json("/api/runs", RUN, headers=headers)
    assert response.status_int == 201
    run = response.json
    assert (run["name"], run["distance"], run["elapsed_time"]) == ("Morning tempo", 10000.0, 2700)
    assert run["average_speed"] == pytest.approx(10000 / 2700)
    assert run["user_id"] == str(runner.id) and run["strava_id"] is None
    assert [str(r.id) for r in runs_of(runner)] == [run["id"]]


def test_add_run_converts_an_aware_start_date_to_utc(web, runner, headers):
    run = web.post_json("/api/runs", {**RUN, "start_date": "2026-05-17T09:30:00+02:00"},
                        headers=headers).json
    assert run["start_date"] == "2026-05-17T07:30:00+00:00"


def test_add_run_takes_numbers_spelled_as_strings_and_optional_fields_absent(web, runner,
                                                                            headers):
    body = {"name": "Easy", "distance": "5000.5", "start_date": "2026-05-02T06:00:00Z",
            "elapsed_time": "1800"}
    run = web.post_json("/api/runs", body, headers=headers).json
    assert (run["distance"], run["elapsed_time"], run["average_heartrate"]) == (5000.5, 1800,
                                                                              None)


@pytest.mark.parametrize("name", ["name", "distance", "start_date", "elapsed_time"])
def test_add_run_refuses_a_missing_field(web, runner, headers, name):
    body = {key: value for key, value in RUN.items() if key != name}
    response = web.post_json("/api/runs", body, headers=headers, expect_errors=True)
    assert_error(response, 400, field=name, mentions=["required"])
    assert runs_of(runner) == []


@pytest.mark.parametrize("changes, field, mentions", [
    ({"name": "   "}, "name", ["required"]),
    ({"name": None}, "name", ["required"]),
    ({"name": 42}, "name", ["string"]),
    ({"name": "x" * 201}, "name", ["at most 200"]),
    ({"distance": "ten km"}, "distance", ["number"]),
    ({"distance": True}, "distance", ["number"]),
    ({"distance": [10000]}, "distance", ["number"]),
    ({"distance": 0}, "distance", ["at least 1"]),
    ({"distance": -5}, "distance", ["at least 1"]),
    ({"distance": 1_000_001}, "distance", ["at most"]),
    ({"distance": "inf"}, "distance", ["finite"]),
    ({"elapsed_time": 0}, "elapsed_time", ["at least 1"]),
    ({"elapsed_time": 12.5}, "elapsed_time", ["integer"]),
    ({"elapsed_time": "1800s"}, "elapsed_time", ["integer"]),
    ({"elapsed_time": 7 * 24 * 3600 + 1}, "elapsed_time", ["at most"]),
    ({"elapsed_time": False}, "elapsed_time", ["integer"]),
    ({"start_date": "yesterday"}, "start_date", ["date-time"]),
    ({"start_date": 1747467000}, "start_date", ["date-time"]),
    ({"start_date": "2026-02-30T07:00:00"}, "start_date", ["date-time"]),
    ({"start_date": "9999-12-31T23:30:00-05:00"}, "start_date", ["date-time"]),
    ({"start_date": "0001-01-01T00:30:00+01:00"}, "start_date", ["date-time"]),
    ({"average_heartrate": 10}, "average_heartrate", ["at least 20"]),
    ({"average_heartrate": "fast"}, "average_heartrate", ["number"]),
    ({"total_elevation_gain": -1}, "total_elevation_gain", ["at least 0"]),
    ({"strava_id": 123}, "strava_id", ["unknown"]),
    ({"pace": 270}, "pace", ["unknown"]),
])
def test_add_run_refuses_bad_values_and_writes_nothing(web, runner, headers, changes, field,
                                                       mentions):
    response = web.post_json("/api/runs", {**RUN, **changes}, headers=headers,
                             expect_errors=True)
    assert_error(response, 400, field=field, mentions=mentions)
    assert runs_of(runner) == []


def test_an_empty_body_lists_every_missing_field_by_its_key(web, runner, headers):
    response = web.post_json("/api/runs", {}, headers=headers, expect_errors=True)
    body = assert_error(response, 400, field="name", mentions=["name is required"])
    assert body["errors"] == [{"field": key, "message": f"{key} is required"}
                              for key in ("name", "distance", "start_date", "elapsed_time")]
    assert runs_of(runner) == []


def test_every_invalid_field_is_listed_with_the_unknown_ones(web, runner, headers):
    changes = {"distance": "far", "average_heartrate": "fast", "pace": 270}
    response = web.post_json("/api/runs", {**RUN, **changes}, headers=headers,
                             expect_errors=True)
    body = assert_error(response, 400, field="pace", mentions=["unknown"])
    assert [problem["field"] for problem in body["errors"]] == [
        "pace", "distance", "average_heartrate"]
    assert body["errors"][2]["message"] == "average_heartrate must be a number, got 'fast'"


@pytest.mark.parametrize("raw, field, mentions", [
    ('{"name": "x", "distance": NaN, "start_date": "2026-05-01T07:00:00", "elapsed_time": 60}',
     "distance", ["finite"]),
    ('{"name": "x", "distance": Infinity, "start_date": "2026-05-01T07:00:00", '
     '"elapsed_time": 60}', "distance", ["finite"]),
    ('{"name": "x", "distance": 5000, "start_date": "2026-05-01T07:00:00", '
     '"elapsed_time": Infinity}', "elapsed_time", ["integer"]),
    ('{"name": "x", "distance": 5000, "start_date": "2026-05-01T07:00:00", '
     '"elapsed_time": 60, "average_heartrate": -Infinity}', "average_heartrate", ["finite"]),
    ('{"name": NaN, "distance": 5000, "start_date": "2026-05-01T07:00:00", '
     '"elapsed_time": 60}', "name", ["string"]),
])
def test_add_run_refuses_non_finite_numbers(web, runner, headers, raw, field, mentions):
    response = web.post("/api/runs", raw, headers=headers, content_type="application/json",
                        expect_errors=True)
    assert_error(response, 400, field=field, mentions=mentions)
    assert runs_of(runner) == []


@pytest.mark.parametrize("raw, mentions", [
    ("", ["empty"]),
    ("   \n", ["empty"]),
    ('{"name": "x",', ["not valid JSON"]),
    ("[" * 100_000, ["deeper than 32"]),
    ('{"name": ' + "[" * 40 + "]" * 40 + "}", ["deeper than 32"]),
    ('[{"name": "x"}]', ["JSON object"]),
    ('"a run"', ["JSON object"]),
    ("true", ["JSON object"]),
    (b"\xff\xfe{}", ["not valid JSON"]),
])
def test_add_run_refuses_a_body_that_is_not_a_json_object(web, runner, headers, raw, mentions):
    response = web.post("/api/runs", raw, headers=headers, content_type="application/json",
                        expect_errors=True)
    assert_error(response, 400, mentions=mentions)
    assert runs_of(runner) == []


def test_add_run_refuses_a_body_over_one_mebibyte(web, runner, headers):
    raw = '{"name": "' + "x" * (1024 * 1024) + '"}'
    response = web.post("/api/runs", raw, headers=headers, content_type="application/json",
                        expect_errors=True)
    assert_error(response, 413)
    assert runs_of(runner) == []


def test_add_run_needs_a_login(web, runner):
    assert_error(web.post_json("/api/runs", RUN, expect_errors=True), 401)
    assert_error(web.post_json("/api/runs", RUN, headers={"Authorization": "Bearer nope"},
                               expect_errors=True), 401)
    assert runs_of(runner) == []


# --- GET /api/runs/<id> ------------------------------------------------------------------

def test_get_my_run(web, runner, headers):
    run = add(runner)
    assert web.get(f"/api/runs/{run.id}", headers=headers).json["name"] == "Morning tempo"


@pytest.mark.parametrize("run_id", ["999", str(2**63), "9" * 30])
def test_get_an_unknown_run_is_404(web, runner, headers, run_id):
    response = web.get(f"/api/runs/{run_id}", headers=headers, expect_errors=True)
    assert_error(response, 404, mentions=["not found"])


def test_another_runners_run_looks_missing(web, runner, other, headers):
    theirs = add(other)
    response = web.get(f"/api/runs/{theirs.id}", headers=headers, expect_errors=True)
    assert_error(response, 404, mentions=[f"run {theirs.id} not found"])


# --- PUT /api/runs/<id> ------------------------------------------------------------------

def test_put_replaces_the_run_and_clears_absent_optional_fields(web, runner, headers):
    run = add(runner)
    body = {"name": "Renamed", "distance": 12000, "start_date": "2026-05-18T07:00:00",
            "elapsed_time": 3000}
    replaced = web.put_json(f"/api/runs/{run.id}", body, headers=headers).json
    assert (replaced["id"], replaced["name"], replaced["distance"]) == (str(run.id), "Renamed",
                                                                  12000)
    stored = features().runs.get_run(runner.id, run.id)
    assert (stored.average_heartrate, stored.total_elevation_gain) == (None, None)
    assert stored.average_speed == pytest.approx(4.0)


@pytest.mark.parametrize("body, field", [
    ({**RUN, "distance": -1}, "distance"),
    ({key: value for key, value in RUN.items() if key != "elapsed_time"}, "elapsed_time"),
    ({**RUN, "user_id": 2}, "user_id"),
])
def test_put_refuses_bad_input_and_keeps_the_run(web, runner, headers, body, field):
    run = add(runner)
    response = web.put_json(f"/api/runs/{run.id}", body, headers=headers, expect_errors=True)
    assert_error(response, 400, field=field)
    assert features().runs.get_run(runner.id, run.id) == run


def test_put_on_another_runners_run_is_404_and_changes_nothing(web, runner, other, headers):
    theirs = add(other)
    response = web.put_json(f"/api/runs/{theirs.id}", {**RUN, "name": "Mine now"},
                            headers=headers, expect_errors=True)
    assert_error(response, 404)
    assert features().runs.get_run(other.id, theirs.id) == theirs


# --- PATCH /api/runs/<id> ----------------------------------------------------------------

def test_patch_changes_only_the_given_fields(web, runner, headers):
    run = add(runner)
    patched = web.patch_json(f"/api/runs/{run.id}", {"name": "Tempo+", "elapsed_time": 2500},
                             headers=headers).json
    assert (patched["name"], patched["elapsed_time"], patched["distance"]) == \
        ("Tempo+", 2500, 10000)
    stored = features().runs.get_run(runner.id, run.id)
    assert stored.average_heartrate == 152 and stored.average_speed == pytest.approx(4.0)


def test_patch_can_clear_an_optional_field(web, runner, headers):
    run = add(runner)
    web.patch_json(f"/api/runs/{run.id}", {"average_heartrate": None}, headers=headers)
    assert features().runs.get_run(runner.id, run.id).average_heartrate is None


@pytest.mark.parametrize("body, field", [
    ({"name": "Good name", "distance": "far"}, "distance"),
    ({"elapsed_time": 3000, "average_heartrate": 400}, "average_heartrate"),
    ({"name": None}, "name"),
    ({"name": "Good name", "strava_id": 5}, "strava_id"),
    ({"name": "Good name", "id": 77}, "id"),
])
def test_patch_with_one_bad_field_changes_nothing(web, runner, headers, body, field):
    run = add(runner)
    response = web.patch_json(f"/api/runs/{run.id}", body, headers=headers, expect_errors=True)
    assert_error(response, 400, field=field)
    assert features().runs.get_run(runner.id, run.id) == run


@pytest.mark.parametrize("raw", ["", "[]", "null", '"x"', "{"])
def test_patch_refuses_a_body_that_is_not_an_object(web, runner, headers, raw):
    run = add(runner)
    response = web.patch(f"/api/runs/{run.id}", raw, headers=headers,
                         content_type="application/json", expect_errors=True)
    assert_error(response, 400)
    assert features().runs.get_run(runner.id, run.id) == run


def test_patch_on_another_runners_run_is_404(web, runner, other, headers):
    theirs = add(other)
    response = web.patch_json(f"/api/runs/{theirs.id}", {"name": "Mine"}, headers=headers,
                              expect_errors=True)
    assert_error(response, 404)
    assert features().runs.get_run(other.id, theirs.id) == theirs


# --- DELETE /api/runs/<id> ---------------------------------------------------------------

def test_delete_my_run(web, runner, headers):
    run = add(runner)
    assert web.delete(f"/api/runs/{run.id}", headers=headers).status_int == 204
    assert runs_of(runner) == []
    assert_error(web.get(f"/api/runs/{run.id}", headers=headers, expect_errors=True), 404)


def test_delete_another_runners_run_is_404_and_it_survives(web, runner, other, headers):
    theirs = add(other)
    assert_error(web.delete(f"/api/runs/{theirs.id}", headers=headers, expect_errors=True), 404)
    assert runs_of(other) == [theirs]


def test_delete_needs_a_login(web, runner):
    run = add(runner)
    assert_error(web.delete(f"/api/runs/{run.id}", expect_errors=True), 401)
    assert runs_of(runner) == [run]


# --- methods -----------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [("put", "/api/runs"), ("delete", "/api/runs"),
                                          ("post", "/api/runs/1")])
def test_wrong_method_is_405_json_and_writes_nothing(web, runner, headers, method, path):
    add(runner)
    response = getattr(web, method)(path, headers=headers, expect_errors=True)
    assert_error(response, 405, mentions=["method"])
    assert "GET" in response.headers.get("Allow", "")
    assert len(runs_of(runner)) == 1
