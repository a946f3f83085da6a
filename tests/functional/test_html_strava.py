"""HTML Strava pages: link status, the runner's import, the admin import; Strava faked."""

import datetime as dt

import pytest
import requests

from monolith.wiring import features
from tests.conftest import PASSWORD

ACTIVITIES_URL = "http://strava.test/api/v3/athlete/activities"


def login(web, user):
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = user.email, PASSWORD
    form.submit()


def activity(strava_id, kind="Run", distance=10000.0):
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=strava_id)
    return {"id": strava_id, "name": f"Strava {strava_id}", "type": kind, "distance": distance,
            "start_date": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "elapsed_time": 3000,
            "average_heartrate": 148.5, "total_elevation_gain": 12.0}


def all_runs(user):
    today = dt.date.today()
    months = {(d.year, d.month) for d in (today, today - dt.timedelta(days=31))}
    return [run for year, month in months for run in features().runs.list_runs(user.id, year,
                                                                               month)]


def import_form(page, action):
    return next(f for f in page.forms.values() if f.action == action)


@pytest.fixture
def runner(web, make_user):
    user = make_user("runner@example.com")
    login(web, user)
    return user


def link(user, token):
    features().accounts.link_strava(user.id, token)


def test_page_shows_not_linked(web, runner):
    res = web.get("/strava")
    assert "not linked" in res.text
    assert 'href="/profile"' in res.text
    assert "/strava/import" not in res.text
    assert "/admin/strava/import" not in res.text  # not an admin


def test_import_without_a_link_is_a_clear_404(web, runner, requests_mock):
    token = web.get("/runs/new").forms["run"]["csrf_token"].value
    res = web.post("/strava/import", {"csrf_token": token}, status=404)
    assert "Link your Strava account on your profile page" in res.text
    assert requests_mock.call_count == 0


def test_import_my_runs(web, runner, requests_mock):
    link(runner, "tok-runner")
    requests_mock.get(ACTIVITIES_URL, json=[activity(1), activity(2)])
    page = web.get("/strava")
    assert "is <strong>linked</strong>" in page.text
    res = import_form(page, "/strava/import").submit()
    assert res.location.endswith("/strava")
    assert "Imported 2 new runs (0 already known)" in res.follow().text
    request = requests_mock.last_request
    assert request.headers["Authorization"] == "Bearer tok-runner"
    assert request.qs["page"] == ["1"] and request.qs["per_page"] == ["100"]
    assert "after" in request.qs
    assert sorted(run.strava_id for run in all_runs(runner)) == [1, 2]

    res = import_form(web.get("/strava"), "/strava/import").submit()
    assert "Imported 0 new runs (2 already known)" in res.follow().text
    assert len(all_runs(runner)) == 2


def test_imported_runs_show_on_the_runs_page(web, runner, requests_mock):
    link(runner, "tok-runner")
    requests_mock.get(ACTIVITIES_URL, json=[activity(1)])
    import_form(web.get("/strava"), "/strava/import").submit()
    [run] = all_runs(runner)
    page = web.get(f"/runs?year={run.start_date.year}&month={run.start_date.month}")
    assert "Strava 1" in page.text


@pytest.mark.parametrize(("mock", "message"), [
    ({"status_code": 500}, "Strava answered HTTP 500"),
    ({"status_code": 401}, "Strava refused the linked token"),
    ({"text": "<html>down</html>"}, "Strava answered something that is not JSON"),
    ({"json": {"message": "nope"}}, "not a list of activities"),
    ({"exc": requests.ConnectionError}, "Strava could not be reached"),
    ({"exc": requests.Timeout}, "Strava could not be reached"),
])
def test_strava_failures_show_a_502_page(web, runner, requests_mock, mock, message):
    link(runner, "tok-runner")
    requests_mock.get(ACTIVITIES_URL, **mock)
    res = import_form(web.get("/strava"), "/strava/import").submit(status=502)
    assert "Strava import failed" in res.text and message in res.text
    assert all_runs(runner) == []


def test_import_needs_csrf_and_login(web, make_user):
    assert "/login" in web.get("/strava").location
    web.post("/strava/import", status=400)
    user = make_user()
    login(web, user)
    link(user, "tok")
    web.post("/strava/import", status=400)
    web.get("/strava/import", status=405)


# --- admin ---------------------------------------------------------------------------------


def test_admin_imports_everyone(web, make_user, requests_mock):
    admin = make_user("admin@example.com", admin=True)
    good, bad = make_user("good@example.com"), make_user("bad@example.com")
    make_user("unlinked@example.com")
    link(good, "tok-good")
    link(bad, "tok-bad")
    requests_mock.get(ACTIVITIES_URL, request_headers={"Authorization": "Bearer tok-good"},
                      json=[activity(1), activity(2), activity(3)])
    requests_mock.get(ACTIVITIES_URL, request_headers={"Authorization": "Bearer tok-bad"},
                      status_code=503)
    login(web, admin)
    page = web.get("/strava")
    res = import_form(page, "/admin/strava/import").submit()
    assert res.location.endswith("/strava")
    text = res.follow().text
    assert "Imported Strava runs for 2 linked runner(s)." in text
    assert "good@example.com: Imported 3 new runs (0 already known)" in text
    assert "bad@example.com: Strava import failed: Strava answered HTTP 503" in text
    assert "unlinked@example.com" not in text
    assert len(all_runs(good)) == 3 and all_runs(bad) == []


def test_non_admin_cannot_import_everyone(web, runner, make_user, requests_mock):
    other = make_user()
    link(other, "tok-other")
    token = web.get("/runs/new").forms["run"]["csrf_token"].value
    res = web.post("/admin/strava/import", {"csrf_token": token}, status=403)
    assert "only an admin" in res.text
    assert requests_mock.call_count == 0
    assert all_runs(other) == []
