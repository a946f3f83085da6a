"""LocalReports: monthly statistics computed from runs read through the Runs contract."""

from __future__ import annotations

import calendar
from collections import defaultdict

from shims import fields
from contracts.reports import DayDistance, MonthlyReport
from contracts.runs import RunRecord, Runs


def summarise(user_id: int, year: int, month: int, runs: list[RunRecord]) -> MonthlyReport:
    total_distance = sum(run.distance for run in runs)
    total_time = sum(run.elapsed_time for run in runs)
    with_hr = [run for run in runs if run.average_heartrate is not None]
    hr_time = sum(run.elapsed_time for run in with_hr)
    per_day: dict[int, float] = defaultdict(float)
    for run in runs:
        per_day[run.start_date.day] += run.distance
    days_in_month = calendar.monthrange(year, month)[1]
    return MonthlyReport(
        user_id=user_id, year=year, month=month, run_count=len(runs),
        total_distance=round(total_distance, 1),
        longest_distance=max((run.distance for run in runs), default=0.0),
        total_time=total_time,
        average_pace=round(total_time / (total_distance / 1000), 1) if total_distance else None,
        # Weighted by time: a long run's heart rate counts for more than a short one's.
        average_heartrate=round(sum(r.average_heartrate * r.elapsed_time for r in with_hr)
                                / hr_time, 1) if hr_time else None,
        per_day=tuple(DayDistance(day=day, distance=round(per_day.get(day, 0.0), 1))
                      for day in range(1, days_in_month + 1)),
    )


class LocalReports:
    def __init__(self, runs: Runs):
        self._runs = runs

    def monthly_report(self, user_id: int, year: int, month: int) -> MonthlyReport:
        year, month = fields.month(year, month)
        return summarise(user_id, year, month, self._runs.list_runs(user_id, year, month))
