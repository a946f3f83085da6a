"""Reports: a runner's monthly statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol

from shims import fields
from shims.contract import describe, read
from shims.ids import Id
from shims.remote import RemoteClient


@dataclass(frozen=True)
class DayDistance:
    day: int
    distance: float  # metres


@dataclass(frozen=True)
class MonthlyReport:
    user_id: Id
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
    @read
    def monthly_report(self, user_id: Id, year: Annotated[int, fields.YEAR_LIMITS],
                       month: Annotated[int, fields.MONTH_LIMITS]) -> MonthlyReport: ...


REPORTS = describe(Reports, "reports")


class RemoteReports(RemoteClient):
    """The reports contract over HTTP (or in-process WSGI), for an extracted service."""

    spec = REPORTS
