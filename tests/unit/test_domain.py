"""Pure domain logic: report summaries, month bounds, plan schedules, Strava activities."""

import datetime as dt

import pytest

from monolith.races.service import MAX_PLAN_WEEKS, plan_schedule
from monolith.reports.service import summarise
from monolith.runs.service import month_bounds
from monolith.strava.service import LocalStravaImport, activity_to_run
from contracts.accounts import StravaLink
from contracts.runs import ImportCount, RunRecord
from shims.errors import NotFound, UpstreamError


def run(day, distance, elapsed, heartrate=None, month=5):
    return RunRecord(id=day, user_id=1, name="r", distance=distance,
                     start_date=dt.datetime(2026, month, day, 7), elapsed_time=elapsed,
                     average_speed=distance / elapsed, average_heartrate=heartrate,
                     total_elevation_gain=None, strava_id=None)


# --- reports.summarise -------------------------------------------------------------------

def test_summarise_totals_longest_and_pace():
    report = summarise(1, 2026, 5, [run(1, 10_000, 3000), run(2, 5_000, 1200),
                                    run(2, 2_500.04, 600)])
    assert (report.user_id, report.year, report.month, report.run_count) == (1, 2026, 5, 3)
    assert report.total_distance == 17_500.0
    assert report.longest_distance == 10_000
    assert report.total_time == 4800
    assert report.average_pace == pytest.approx(4800 / 17.50004, abs=0.05)


def test_summarise_heart_rate_is_weighted_by_time_and_ignores_runs_without_it():
    report = summarise(1, 2026, 5, [run(1, 10_000, 3600, heartrate=140),
                                    run(2, 3_000, 1200, heartrate=180),
                                    run(3, 5_000, 9000)])
    assert report.average_heartrate == 150.0  # (140*3600 + 180*1200) / 4800, not (140+180)/2


def test_summarise_per_day_buckets_cover_the_whole_month():
    report = summarise(1, 2026, 5, [run(3, 1000, 300), run(3, 2000.25, 600),
                                    run(31, 500, 150)])
    assert [d.day for d in report.per_day] == list(range(1, 32))
    buckets = {d.day: d.distance for d in report.per_day}
    assert (buckets[3], buckets[31], buckets[1]) == (3000.2, 500, 0)
    assert len(summarise(1, 2024, 2, []).per_day) == 29  # leap year
    assert len(summarise(1, 2026, 2, []).per_day) == 28
    assert len(summarise(1, 2026, 4, []).per_day) == 30


def test_summarise_an_empty_month():
    report = summarise(7, 2026, 12, [])
    assert (report.run_count, report.total_distance, report.longest_distance,
            report.total_time) == (0, 0, 0, 0)
    assert report.average_pace is None and report.average_heartrate is None
    assert all(d.distance == 0 for d in report.per_day) and len(report.per_day) == 31


def test_month_bounds_including_december_to_january():
    assert month_bounds(2026, 5) == (dt.datetime(2026, 5, 1), dt.datetime(2026, 6, 1))
    assert month_bounds(2026, 12) == (dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1))
    assert month_bounds(2027, 1) == (dt.datetime(2027, 1, 1), dt.datetime(2027, 2, 1))


# --- races.plan_schedule -----------------------------------------------------------------

def test_plan_schedule_grows_then_tapers_and_stays_before_race_day():
    start, race_day = dt.date(2027, 1, 4), dt.date(2027, 3, 1)  # 56 days: 8 weeks
    schedule = plan_schedule(start, race_day, 21_097.5, 3)
    assert len(schedule) == 8 * 3
    assert all(start <= day < race_day for day, _, _ in schedule)
    assert [day for day, _, _ in schedule] == sorted(day for day, _, _ in schedule)
    long_runs = [distance for _, distance, label in schedule if "long run" in label]
    assert len(long_runs) == 8
    assert long_runs[:-1] == sorted(long_runs[:-1])  # grows week on week
    assert long_runs[-1] < long_runs[-2]  # tapered
    assert max(long_runs) <= round(0.9 * 21_097.5, -2)
    assert all("(taper)" in label for _, _, label in schedule[-3:])
    assert all(distance >= 1000 and distance % 100 == 0 for _, distance, _ in schedule)


def test_plan_schedule_easy_runs_are_half_the_long_run():
    schedule = plan_schedule(dt.date(2027, 1, 4), dt.date(2027, 2, 1), 10_000, 2)
    week_one = schedule[:2]
    assert "easy run" in week_one[0][2] and "long run" in week_one[1][2]
    assert week_one[0][1] == max(1000.0, round(week_one[1][1] * 0.5, -2))


@pytest.mark.parametrize("runs_per_week, offsets", [
    (1, [0]), (2, [0, 3]), (3, [0, 2, 4]), (7, [0, 1, 2, 3, 4, 5, 6]),
])
def test_plan_schedule_spreads_runs_over_the_week(runs_per_week, offsets):
    start = dt.date(2027, 1, 4)
    schedule = plan_schedule(start, dt.date(2027, 1, 25), 10_000, runs_per_week)
    assert [(day - start).days for day, _, _ in schedule[:runs_per_week]] == offsets


def test_plan_schedule_for_a_race_days_away_never_plans_on_or_after_race_day():
    start, race_day = dt.date(2027, 1, 4), dt.date(2027, 1, 7)
    schedule = plan_schedule(start, race_day, 5000, 7)
    assert [day for day, _, _ in schedule] == [dt.date(2027, 1, d) for d in (4, 5, 6)]
    assert "(taper)" not in schedule[-1][2]  # a single week is not a taper


def test_plan_schedule_for_a_far_race_is_capped_and_ends_at_the_race():
    start, race_day = dt.date(2027, 1, 4), dt.date(2029, 6, 3)
    schedule = plan_schedule(start, race_day, 42_195, 2)
    assert len(schedule) == MAX_PLAN_WEEKS * 2
    assert race_day - dt.timedelta(days=7) <= schedule[-1][0] < race_day
    assert schedule[0][0] >= race_day - dt.timedelta(weeks=MAX_PLAN_WEEKS)


# --- strava.activity_to_run --------------------------------------------------------------

ACTIVITY = {"id": 77, "type": "Run", "sport_type": "Run", "name": "Lunch run",
            "distance": 8000.5, "start_date": "2026-05-17T11:00:00Z", "elapsed_time": 2400,
            "average_heartrate": 148.2, "total_elevation_gain": 30}


def test_activity_to_run():
    run_input = activity_to_run(ACTIVITY)
    assert (run_input.strava_id, run_input.name, run_input.distance, run_input.elapsed_time,
            run_input.start_date, run_input.average_heartrate,
            run_input.total_elevation_gain) == (77, "Lunch run", 8000.5, 2400,
                                                dt.datetime(2026, 5, 17, 11), 148.2, 30.0)


def test_activity_without_heart_rate_or_name():
    run_input = activity_to_run({**ACTIVITY, "average_heartrate": None, "name": ""})
    assert run_input.average_heartrate is None and run_input.name == "Strava run"
    del_hr = {key: value for key, value in ACTIVITY.items() if key != "average_heartrate"}
    assert activity_to_run(del_hr).average_heartrate is None


@pytest.mark.parametrize("changes", [
    {"type": "Ride", "sport_type": "Ride"}, {"type": None, "sport_type": None},
    {"type": "Walk", "sport_type": "Walk"},
])
def test_activities_that_are_not_runs_are_none(changes):
    assert activity_to_run({**ACTIVITY, **changes}) is None


def test_either_type_or_sport_type_may_say_run():
    assert activity_to_run({**ACTIVITY, "type": "Run", "sport_type": "TrailRun"}) is not None
    assert activity_to_run({**ACTIVITY, "type": None, "sport_type": "Run"}) is not None


@pytest.mark.parametrize("changes", [
    {"id": None}, {"id": "abc"}, {"id": 0}, {"id": 2**64}, {"distance": None},
    {"distance": 0}, {"elapsed_time": -1}, {"start_date": None}, {"start_date": "yesterday"},
    {"average_heartrate": 500}, {"name": 123},
])
def test_malformed_runs_are_none(changes):
    assert activity_to_run({**ACTIVITY, **changes}) is None


def test_activity_unknown_keys_are_ignored():
    assert activity_to_run({**ACTIVITY, "kudos_count": 3, "map": {}}).strava_id == 77


# --- strava.LocalStravaImport with fake collaborators ------------------------------------

class FakeAccounts:
    def __init__(self, links, missing=()):
        self._links = links
        self._missing = set(missing)

    def strava_links(self):
        return [StravaLink(user_id=uid, token=token) for uid, token in self._links.items()]

    def strava_link(self, user_id):
        if user_id in self._missing:
            raise NotFound(f"user {user_id} has not linked a Strava account", field="strava_token")
        return StravaLink(user_id=user_id, token=self._links[user_id])


class FakeRuns:
    def __init__(self):
        self.imported = {}

    def import_runs(self, user_id, runs):
        self.imported[user_id] = runs
        return ImportCount(created=len(runs), skipped=0)


class FakeClient:
    def __init__(self, by_token):
        self.by_token = by_token
        self.calls = []

    def activities(self, token, after):
        self.calls.append((token, after))
        result = self.by_token[token]
        if isinstance(result, Exception):
            raise result
        return result


def test_import_user_counts_and_window():
    client = FakeClient({"t1": [ACTIVITY, {**ACTIVITY, "type": "Ride", "sport_type": "Ride"}]})
    runs = FakeRuns()
    clock = lambda: dt.datetime(2026, 6, 1)  # noqa: E731
    importer = LocalStravaImport(FakeAccounts({1: "t1"}), runs, client, days=30, clock=clock)
    result = importer.import_user(1)
    assert (result.fetched, result.created, result.skipped, result.ignored,
            result.error) == (2, 1, 0, 1, None)
    assert client.calls == [("t1", dt.datetime(2026, 5, 2))]
    assert [r.strava_id for r in runs.imported[1]] == [77]


def test_import_all_reports_each_runners_failure_and_goes_on():
    client = FakeClient({"t1": [ACTIVITY], "t2": UpstreamError("Strava answered HTTP 500"),
                         "t3": [ACTIVITY]})
    runs = FakeRuns()
    # user 3 unlinked (or was deleted) between the listing and the import
    accounts = FakeAccounts({1: "t1", 2: "t2", 3: "t3", 4: "t3"}, missing={3})
    results = LocalStravaImport(accounts, runs, client).import_all()
    by_user = {result.user_id: result for result in results}
    assert sorted(by_user) == [1, 2, 3, 4]
    assert by_user[1].created == 1 and by_user[4].created == 1
    assert by_user[2].error == "Strava answered HTTP 500" and by_user[2].created == 0
    assert "not linked" in by_user[3].error
    assert sorted(runs.imported) == [1, 4]
