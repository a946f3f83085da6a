"""Reports: a runner's monthly statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DayDistance:
    day: int
    distance: float  # metres


@dataclass(frozen=True)
class MonthlyReport:
    user_id: int
    year: int
    month: int
    run_count: int
    total_distance: float  # metres
    longest_distance: float  # metres
    total_time: int  # seconds
    average_pace: float | None  # seconds per km
    average_heartrate: float | None  # weighted by time
    per_day: tuple[DayDistance, ...]


class Reports(Protocol):
    def monthly_report(self, user_id: int, year: int, month: int) -> MonthlyReport: ...
