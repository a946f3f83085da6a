"""JSON API for monthly reports."""

import datetime as dt

import pytest

from monolith.wiring import features
from contracts.runs import RunInput
from support import assert_error


def add(user, start, distance, elapsed, heartrate=None):
    return features().runs.add_run(user.id, RunInput(
        name="run", distance=distance, start_date=start, elapsed_time=elapsed,
        average_heartrate=heartrate))


@pytest.fixture
def runner(make_user):
    return make_user("runner@example.com")


@pytest.fixture
def headers(runner, api_headers):
    return api_headers(runner)


def test_monthly_report(web, runner, make_user, headers):
    add(runner, dt.datetime(2026, 5, 3, 7), 10_000, 3000, heartrate=150)
    add(runner, dt.datetime(2026, 5, 3, 18), 5_000, 1500)
    add(runner, dt.datetime(2026, 5, 31, 23, 59), 20_000, 6000, heartrate=140)
    add(runner, dt.datetime(2026, 6, 1, 0, 0), 42_195, 12_000)  # next month
    add(make_user(), dt.datetime(2026, 5, 10, 7), 7_000, 2000)  # another runner
    report = web.get("/api/reports/monthly?year=2026&month=5", headers=headers).json
    assert (report["user_id"], report["year"], report["month"]) == (str(runner.id), 2026, 5)
    assert (report["run_count"], report["total_distance"], report["longest_distance"],
            report["total_time"]) == (3, 35_000, 20_000, 10_500)
    assert report["average_pace"] == 300.0  # 10 500 s over 35 km
    assert report["average_heartrate"] == pytest.approx((150 * 3000 + 140 * 6000) / 9000, abs=0.1)
    per_day = {day["day"]: day["distance"] for day in report["per_day"]}
    assert sorted(per_day) == list(range(1, 32))
    assert (per_day[3], per_day[31], per_day[10]) == (15_000, 20_000, 0)


def test_report_of_an_empty_month(web, runner, headers):
    report = web.get("/api/reports/monthly?year=2027&month=2", headers=headers).json
    assert (report["run_count"], report["total_distance"], report["longest_distance"]) == \
        (0, 0, 0)
    assert report["average_pace"] is None and report["average_heartrate"] is None
    assert len(report["per_day"]) == 28


def test_report_defaults_to_the_current_month(web, runner, headers):
    today = dt.date.today()
    add(runner, dt.datetime(today.year, today.month, today.day, 6), 8000, 2400)
    report = web.get("/api/reports/monthly", headers=headers).json
    assert (report["year"], report["month"], report["run_count"]) == \
        (today.year, today.month, 1)


def test_december_report_stops_at_new_year(web, runner, headers):
    add(runner, dt.datetime(2026, 12, 31, 23, 59, 59), 5000, 1500)
    add(runner, dt.datetime(2027, 1, 1, 0, 0, 0), 9000, 2700)
    december = web.get("/api/reports/monthly?year=2026&month=12", headers=headers).json
    january = web.get("/api/reports/monthly?year=2027&month=1", headers=headers).json
    assert (december["run_count"], december["total_distance"]) == (1, 5000)
    assert (january["run_count"], january["total_distance"]) == (1, 9000)


@pytest.mark.parametrize("query, field, mentions", [
    ("year=2026&month=13", "month", ["at most 12"]),
    ("year=2026&month=0", "month", ["at least 1"]),
    ("year=2101&month=1", "year", ["at most 2100"]),
    ("year=twenty&month=1", "year", ["integer"]),
    ("year=2026&month=", "month", ["required"]),
    ("year=2026&month=1e1", "month", ["integer"]),
])
def test_report_refuses_a_bad_month(web, headers, query, field, mentions):
    response = web.get(f"/api/reports/monthly?{query}", headers=headers, expect_errors=True)
    assert_error(response, 400, field=field, mentions=mentions)


def test_report_needs_a_login(web, runner):
    assert_error(web.get("/api/reports/monthly", expect_errors=True), 401)
    assert_error(web.get("/api/reports/monthly", headers={"Authorization": "Bearer x.y.z"},
                         expect_errors=True), 401, mentions=["not valid"])


def test_report_refuses_post(web, headers):
    response = web.post_json("/api/reports/monthly", {}, headers=headers, expect_errors=True)
    assert_error(response, 405)
    assert response.headers["Allow"]
