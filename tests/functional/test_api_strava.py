"""JSON API for Strava import, with Strava faked by requests-mock at the tests' STRAVA_URL."""

import datetime as dt

import pytest
import requests
from sqlalchemy import text

from monolith.wiring import features
from support import assert_error

ACTIVITIES = "http://strava.test/api/v3/athlete/activities"


def activity(number, **changes):
    return {"id": 1000 + number, "type": "Run", "sport_type": "Run", "name": f"Run {number}",
            "distance": 5000.0 + number, "start_date": f"2026-05-{1 + number % 28:02d}T07:00:00Z",
            "elapsed_time": 1500 + number, "average_heartrate": 150.0,
            "total_elevation_gain": 12.0, **changes}


def serve(requests_mock, pages_by_token):
    """Strava's paged activity list, per bearer token; a page past the end is empty."""
    def reply(request, context):
        token = request.headers["Authorization"].removeprefix("Bearer ")
        assert request.qs["per_page"] == ["100"]
        page = int(request.qs["page"][0])
        pages = pages_by_token[token]
        return pages[page - 1] if page <= len(pages) else []
    return requests_mock.get(ACTIVITIES, json=reply)


def strava_runs(user):
    return [run for run in features().runs.list_runs(user.id, 2026, 5)
            if run.strava_id is not None]


@pytest.fixture
def runner(make_user):
    user = make_user("runner@example.com")
    features().accounts.link_strava(user.id, "tok-runner")
    return user


@pytest.fixture
def headers(runner, api_headers):
    return api_headers(runner)


def test_import_creates_runs_and_a_second_import_creates_none(web, runner, headers,
                                                              requests_mock):
    serve(requests_mock, {"tok-runner": [[activity(1), activity(2)]]})
    first = web.post("/api/strava/import", headers=headers).json
    assert first == {"user_id": str(runner.id), "fetched": 2, "created": 2, "skipped": 0,
                     "ignored": 0, "error": None}
    runs = strava_runs(runner)
    assert sorted(run.strava_id for run in runs) == [1001, 1002]
    one = next(run for run in runs if run.strava_id == 1001)
    assert (one.name, one.distance, one.elapsed_time, one.start_date) == \
        ("Run 1", 5001.0, 1501, dt.datetime(2026, 5, 2, 7, 0))
    second = web.post("/api/strava/import", headers=headers).json
    assert (second["fetched"], second["created"], second["skipped"]) == (2, 0, 2)
    assert len(strava_runs(runner)) == 2


def test_import_asks_for_recent_activities_with_the_linked_token(web, runner, headers,
                                                                 requests_mock):
    mock = serve(requests_mock, {"tok-runner": [[]]})
    web.post("/api/strava/import", headers=headers)
    request = mock.last_request
    assert request.headers["Authorization"] == "Bearer tok-runner"
    after = int(request.qs["after"][0])
    ninety_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=90)).timestamp()
    assert abs(after - ninety_days_ago) < 60


def test_import_skips_what_is_not_a_run_and_what_is_malformed(web, runner, headers,
                                                              requests_mock):
    page = [
        activity(1),
        activity(2, type="Ride", sport_type="Ride"),
        activity(3, type="Swim", sport_type=None),
        activity(4, type="Run", sport_type="TrailRun"),  # still a run
        activity(5, distance=None),
        activity(6, distance=-3),
        activity(7, start_date="not a date"),
        activity(8, elapsed_time="long"),
        activity(9, id=True),
        activity(10, id=2**64),
        activity(11, average_heartrate=float("nan")),
        activity(12, name=None),  # a run without a name still counts
        activity(13, id=None),  # could never be de-duplicated
        "not an activity",
        ["nor", "this"],
    ]
    serve(requests_mock, {"tok-runner": [page]})
    result = web.post("/api/strava/import", headers=headers).json
    assert (result["created"], result["error"]) == (3, None)
    # The client drops the two non-objects; of the 13 activities, 10 are not usable runs.
    assert (result["fetched"], result["skipped"], result["ignored"]) == (13, 0, 10)
    runs = strava_runs(runner)
    assert sorted(run.strava_id for run in runs) == [1001, 1004, 1012]
    assert "Strava run" in {run.name for run in runs}


def test_import_follows_pages_of_one_hundred(web, runner, headers, requests_mock):
    page_one = [activity(n) for n in range(100)]
    page_two = [activity(n) for n in range(100, 130)]
    mock = serve(requests_mock, {"tok-runner": [page_one, page_two]})
    result = web.post("/api/strava/import", headers=headers).json
    assert (result["fetched"], result["created"]) == (130, 130)
    assert [int(request.qs["page"][0]) for request in mock.request_history] == [1, 2]
    assert len(strava_runs(runner)) == 130


def test_a_full_last_page_asks_once_more_and_stops_at_the_empty_one(web, runner, headers,
                                                                    requests_mock):
    mock = serve(requests_mock, {"tok-runner": [[activity(n) for n in range(100)]]})
    assert web.post("/api/strava/import", headers=headers).json["created"] == 100
    assert mock.call_count == 2


def test_the_same_activity_on_two_pages_is_created_once(web, runner, headers, requests_mock):
    page_one = [activity(n) for n in range(100)]
    serve(requests_mock, {"tok-runner": [page_one, [activity(99), activity(100)]]})
    result = web.post("/api/strava/import", headers=headers).json
    assert (result["fetched"], result["created"], result["skipped"]) == (102, 101, 1)
    assert len(strava_runs(runner)) == 101


@pytest.mark.parametrize("mock_kwargs, mentions", [
    ({"status_code": 401, "json": {"message": "Authorization Error"}}, ["refused", "link"]),
    ({"status_code": 500, "text": "oops"}, ["HTTP 500"]),
    ({"status_code": 429, "json": {"message": "Rate Limit Exceeded"}}, ["HTTP 429"]),
    ({"exc": requests.exceptions.ConnectTimeout}, ["could not be reached"]),
    ({"exc": requests.exceptions.ReadTimeout}, ["could not be reached"]),
    ({"exc": requests.exceptions.ConnectionError}, ["could not be reached"]),
    ({"status_code": 200, "text": "<html>maintenance</html>"}, ["not JSON"]),
    ({"status_code": 200, "json": {"activities": []}}, ["not a list"]),
])
def test_strava_failures_are_502_and_nothing_is_written(web, runner, headers, requests_mock,
                                                        mock_kwargs, mentions):
    requests_mock.get(ACTIVITIES, **mock_kwargs)
    response = web.post("/api/strava/import", headers=headers, expect_errors=True)
    body = assert_error(response, 502, mentions=["Strava", *mentions])
    assert body["error"] == "upstream_error"
    assert "tok-runner" not in response.text
    assert strava_runs(runner) == []


def test_a_failure_on_page_two_writes_nothing_from_page_one(web, runner, headers,
                                                            requests_mock):
    requests_mock.get(ACTIVITIES, [
        {"json": [activity(n) for n in range(100)]},
        {"status_code": 503, "text": "busy"},
    ])
    assert_error(web.post("/api/strava/import", headers=headers, expect_errors=True), 502,
                 mentions=["HTTP 503"])
    assert strava_runs(runner) == []


def test_a_failed_runs_write_leaves_no_partial_import(app, web, runner, headers, requests_mock):
    serve(requests_mock, {"tok-runner": [[activity(n) for n in range(5)]]})
    with app.extensions["runnerly_engine"].begin() as connection:
        # The database refuses the third run of the batch, after two were inserted.
        connection.execute(text(
            "CREATE TRIGGER refuse_third BEFORE INSERT ON runs "
            "WHEN (SELECT count(*) FROM runs) >= 2 "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    response = web.post("/api/strava/import", headers=headers, expect_errors=True)
    body = assert_error(response, 500)
    assert "disk full" not in body["message"]
    assert strava_runs(runner) == []


def test_import_without_a_linked_strava_is_404_naming_the_token(web, make_user, api_headers,
                                                                requests_mock):
    user = make_user("unlinked@example.com")
    mock = requests_mock.get(ACTIVITIES, json=[activity(1)])
    response = web.post("/api/strava/import", headers=api_headers(user), expect_errors=True)
    assert_error(response, 404, field="strava_token", mentions=["Strava"])
    assert mock.call_count == 0
    assert features().runs.list_runs(user.id, 2026, 5) == []


def test_import_needs_a_login(web, runner, requests_mock):
    mock = requests_mock.get(ACTIVITIES, json=[activity(1)])
    assert_error(web.post("/api/strava/import", expect_errors=True), 401)
    assert mock.call_count == 0 and strava_runs(runner) == []


def test_import_refuses_get(web, headers):
    assert_error(web.get("/api/strava/import", headers=headers, expect_errors=True), 405)


# --- admin import of everyone ------------------------------------------------------------

def test_admin_import_all_goes_on_when_one_runners_strava_fails(web, runner, make_user,
                                                                api_headers, requests_mock):
    broken = make_user("broken@example.com")
    features().accounts.link_strava(broken.id, "tok-broken")
    third = make_user("third@example.com")
    features().accounts.link_strava(third.id, "tok-third")
    make_user("unlinked@example.com")
    admin = make_user("admin@example.com", admin=True)

    def reply(request, context):
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if token == "tok-broken":
            context.status_code = 401
            return {"message": "Authorization Error"}
        return [activity(1), activity(2)] if token == "tok-runner" else [activity(3)]
    requests_mock.get(ACTIVITIES, json=reply)

    results = web.post("/api/admin/strava/import", headers=api_headers(admin)).json["results"]
    by_user = {int(result["user_id"]): result for result in results}  # ids as strings
    assert set(by_user) == {runner.id, broken.id, third.id}
    assert (by_user[runner.id]["created"], by_user[runner.id]["error"]) == (2, None)
    assert (by_user[third.id]["created"], by_user[third.id]["error"]) == (1, None)
    assert by_user[broken.id]["created"] == 0
    assert "refused" in by_user[broken.id]["error"]
    assert len(strava_runs(runner)) == 2 and len(strava_runs(third)) == 1
    assert strava_runs(broken) == []


def test_admin_import_all_with_nobody_linked(web, make_user, api_headers, requests_mock):
    admin = make_user("admin@example.com", admin=True)
    mock = requests_mock.get(ACTIVITIES, json=[])
    assert web.post("/api/admin/strava/import", headers=api_headers(admin)).json == \
        {"results": []}
    assert mock.call_count == 0


def test_admin_import_all_refuses_a_runner_and_an_anonymous_caller(web, runner, headers,
                                                                   requests_mock):
    mock = requests_mock.get(ACTIVITIES, json=[activity(1)])
    assert_error(web.post("/api/admin/strava/import", headers=headers, expect_errors=True), 403)
    assert_error(web.post("/api/admin/strava/import", expect_errors=True), 401)
    assert mock.call_count == 0 and strava_runs(runner) == []
