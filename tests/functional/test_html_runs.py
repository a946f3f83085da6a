"""HTML runs pages: the month's list, add, edit and delete, and every way to get them wrong."""

import datetime as dt

import pytest

from monolith.wiring import features
from contracts.runs import RunInput
from tests.conftest import PASSWORD

GOOD = {"name": "Morning loop", "distance": "10000", "start_date": "2026-11-02T07:30",
        "elapsed_time": "3000", "average_heartrate": "150", "total_elevation_gain": "42"}


def login(web, user):
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = user.email, PASSWORD
    form.submit()


@pytest.fixture
def runner(web, make_user):
    user = make_user()
    login(web, user)
    return user


def add_run(user, name="Stored run", start=dt.datetime(2026, 11, 2, 7, 30), distance=5000.0,
            elapsed=1500):
    return features().runs.add_run(user.id, RunInput(name=name, distance=distance,
                                                     start_date=start, elapsed_time=elapsed))


def runs_of(user, year=2026, month=11):
    return features().runs.list_runs(user.id, year, month)


def csrf_token(web):
    return web.get("/runs/new").forms["run"]["csrf_token"].value


# --- list ----------------------------------------------------------------------------------


def test_list_shows_the_month_with_totals(web, runner):
    add_run(runner, "Easy <i>one</i>", distance=10000.0, elapsed=3000)
    add_run(runner, "Second", start=dt.datetime(2026, 11, 20, 18, 0), distance=5000.0,
            elapsed=1530)
    add_run(runner, "October run", start=dt.datetime(2026, 10, 31, 23, 59))
    res = web.get("/runs?year=2026&month=11")
    assert "November 2026" in res.text
    assert "Easy &lt;i&gt;one&lt;/i&gt;" in res.text  # escaped, never rendered as markup
    assert "October run" not in res.text
    assert "10.00" in res.text and "5:00" in res.text  # km and min:sec per km
    assert "15.00" in res.text  # total distance
    assert "2 runs" in res.text
    assert 'href="/runs?year=2026&amp;month=10"' in res.text
    assert 'href="/runs?year=2026&amp;month=12"' in res.text


def test_list_defaults_to_the_current_month(web, runner):
    today = dt.date.today()
    res = web.get("/runs")
    assert f"{today:%B} {today.year}" in res.text
    assert "No runs in" in res.text


def test_month_links_cross_the_year(web, runner):
    res = web.get("/runs?year=2026&month=1")
    assert 'href="/runs?year=2025&amp;month=12"' in res.text
    res = web.get("/runs?year=2026&month=12")
    assert 'href="/runs?year=2027&amp;month=1"' in res.text


@pytest.mark.parametrize(("query", "message"), [
    ("year=2026&month=13", "month must be at most 12"),
    ("year=2026&month=0", "month must be at least 1"),
    ("year=abc&month=1", "year must be an integer"),
    ("year=2026&month=1.5", "month must be an integer"),
    ("year=1900&month=1", "year must be at least 1970"),
])
def test_list_refuses_a_bad_month(web, runner, query, message):
    res = web.get(f"/runs?{query}", status=400)
    assert message in res.text
    assert "<!doctype html>" in res.text


def test_runs_need_login(web):
    assert "/login" in web.get("/runs").location
    assert "/login" in web.get("/runs/new").location
    assert "/login" in web.get("/runs/1/edit").location


# --- add -----------------------------------------------------------------------------------


def fill(form, **values):
    for name, value in (GOOD | values).items():
        form[name] = value
    return form


def test_add_a_run(web, runner):
    form = web.get("/runs/new").forms["run"]
    assert form["start_date"].value  # defaults to now
    res = fill(form).submit()
    assert res.status_int == 302
    assert res.location.endswith("/runs?year=2026&month=11")
    page = res.follow()
    assert "Added run “Morning loop”." in page.text
    [run] = runs_of(runner)
    assert (run.name, run.distance, run.start_date, run.elapsed_time) == (
        "Morning loop", 10000.0, dt.datetime(2026, 11, 2, 7, 30), 3000)
    assert (run.average_heartrate, run.total_elevation_gain) == (150.0, 42.0)


def test_add_a_run_without_the_optional_fields(web, runner):
    fill(web.get("/runs/new").forms["run"], average_heartrate="",
         total_elevation_gain="").submit()
    [run] = runs_of(runner)
    assert run.average_heartrate is None and run.total_elevation_gain is None


BAD_RUNS = [
    ({"name": ""}, "name is required"),
    ({"name": "x" * 201}, "name must be at most 200 characters"),
    ({"distance": ""}, "distance is required"),
    ({"distance": "ten km"}, "distance must be a number"),
    ({"distance": "0"}, "distance must be at least 1"),
    ({"distance": "nan"}, "distance must be a finite number"),
    ({"distance": "2000000"}, "distance must be at most 1e+06"),
    ({"start_date": ""}, "start time is required"),
    ({"start_date": "yesterday"}, "start time must be a date-time"),
    ({"elapsed_time": "1.5"}, "elapsed time must be an integer"),
    ({"elapsed_time": "-3"}, "elapsed time must be at least 1"),
    ({"average_heartrate": "300"}, "average heart rate must be at most 250"),
    ({"average_heartrate": "fast"}, "average heart rate must be a number"),
    ({"total_elevation_gain": "-1"}, "elevation gain must be at least 0"),
]


@pytest.mark.parametrize(("values", "message"), BAD_RUNS)
def test_add_refuses_bad_input_and_writes_nothing(web, runner, values, message):
    res = fill(web.get("/runs/new").forms["run"], **values).submit(status=400)
    assert message in res.text
    field = next(iter(values))
    assert f'id="{field}-error"' in res.text  # the message sits by the field it names
    if field != "name":
        assert 'value="Morning loop"' in res.text  # the user's input is kept
    assert runs_of(runner) == []


def test_messages_name_fields_as_the_form_does_not_by_their_keys(web, runner):
    res = fill(web.get("/runs/new").forms["run"], average_heartrate="fast").submit(status=400)
    assert "average heart rate must be a number, got &#39;fast&#39;" in res.text
    assert "average_heartrate must" not in res.text


def test_an_empty_form_names_every_missing_field(web, runner):
    res = web.post("/runs/new", {"csrf_token": csrf_token(web)}, status=400)
    assert "This form has 4 problems" in res.text
    for field, message in [("name", "name is required"), ("distance", "distance is required"),
                           ("start_date", "start time is required"),
                           ("elapsed_time", "elapsed time is required")]:
        assert f'<strong class="field-error" id="{field}-error">{message}</strong>' in res.text
    assert 'id="average_heartrate-error"' not in res.text  # optional: nothing is wrong
    assert runs_of(runner) == []


def test_add_refuses_unknown_fields(web, runner):
    res = web.post("/runs/new", GOOD | {"csrf_token": csrf_token(web), "strava_id": "7"},
                   status=400)
    assert "unknown field(s) in body: strava_id" in res.text
    assert runs_of(runner) == []


def test_add_without_csrf_token_is_refused(web, runner):
    res = web.post("/runs/new", GOOD, status=400)
    assert "form has expired" in res.text
    assert runs_of(runner) == []


# --- edit ----------------------------------------------------------------------------------


def test_edit_shows_the_run_and_saves_changes(web, runner):
    run = add_run(runner)
    form = web.get(f"/runs/{run.id}/edit").forms["run"]
    assert form["name"].value == "Stored run"
    assert form["distance"].value == "5000"
    assert form["start_date"].value == "2026-11-02T07:30"
    form["name"], form["start_date"] = "Renamed", "2026-12-24T08:00"
    res = form.submit()
    assert res.location.endswith("/runs?year=2026&month=12")
    assert "Saved run “Renamed”." in res.follow().text
    saved = features().runs.get_run(runner.id, run.id)
    assert (saved.name, saved.start_date) == ("Renamed", dt.datetime(2026, 12, 24, 8, 0))


@pytest.mark.parametrize(("values", "message"), BAD_RUNS[::3])
def test_edit_refuses_bad_input_and_changes_nothing(web, runner, values, message):
    run = add_run(runner)
    form = web.get(f"/runs/{run.id}/edit").forms["run"]
    for name, value in values.items():
        form[name] = value
    res = form.submit(status=400)
    assert message in res.text
    assert features().runs.get_run(runner.id, run.id) == run


def test_another_runners_run_is_404(web, runner, make_user):
    theirs = add_run(make_user(), "Not yours")
    token = csrf_token(web)
    res = web.get(f"/runs/{theirs.id}/edit", status=404)
    assert "Not yours" not in res.text
    web.post(f"/runs/{theirs.id}/edit", GOOD | {"csrf_token": token}, status=404)
    web.post(f"/runs/{theirs.id}/delete", {"csrf_token": token}, status=404)
    assert features().runs.get_run(theirs.user_id, theirs.id) == theirs


def test_unknown_run_is_404(web, runner):
    res = web.get("/runs/999/edit", status=404)
    assert "run 999 not found" in res.text
    web.post("/runs/999/delete", {"csrf_token": csrf_token(web)}, status=404)


def test_edit_an_unknown_run_with_bad_input_is_404_not_400(web, runner):
    web.post("/runs/999/edit", {"csrf_token": csrf_token(web), "distance": "x"}, status=404)


# --- delete --------------------------------------------------------------------------------


def test_delete_a_run(web, runner):
    run = add_run(runner)
    page = web.get("/runs?year=2026&month=11")
    delete = next(f for f in page.forms.values() if f.action == f"/runs/{run.id}/delete")
    res = delete.submit()
    assert res.location.endswith("/runs?year=2026&month=11")
    assert "Deleted run “Stored run”." in res.follow().text
    assert runs_of(runner) == []


def test_delete_is_post_only_and_needs_csrf(web, runner):
    run = add_run(runner)
    web.get(f"/runs/{run.id}/delete", status=405)
    web.post(f"/runs/{run.id}/delete", status=400)
    assert runs_of(runner) == [run]
