"""A contract as an app writes one, for the kit's remote-client and deadline tests: a running
app's runs, with dataclass arguments and results that carry dates, floats and optional
fields. Not Runnerly's contract (contracts/runs.py), which the kit's tests must not import:
the same shape, without Runnerly's own validation rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from shims.contract import describe, read, write
from shims.remote import RemoteClient


@dataclass(frozen=True)
class RunInput:
    name: str
    distance: float  # metres
    start_date: dt.datetime  # UTC, naive
    elapsed_time: int  # seconds
    average_heartrate: float | None = None
    total_elevation_gain: float | None = None
    strava_id: int | None = None


@dataclass(frozen=True)
class RunRecord:
    id: int
    user_id: int
    name: str
    distance: float
    start_date: dt.datetime
    elapsed_time: int
    average_speed: float
    average_heartrate: float | None
    total_elevation_gain: float | None
    strava_id: int | None


@dataclass(frozen=True)
class ImportCount:
    created: int
    skipped: int


class Runs(Protocol):
    @read
    def list_runs(self, user_id: int, year: int, month: int) -> list[RunRecord]: ...
    @read
    def get_run(self, user_id: int, run_id: int) -> RunRecord: ...
    @write
    def add_run(self, user_id: int, run: RunInput) -> RunRecord: ...
    @write
    def update_run(self, user_id: int, run_id: int, run: RunInput) -> RunRecord: ...
    @write
    def delete_run(self, user_id: int, run_id: int) -> None: ...
    @write
    def import_runs(self, user_id: int, runs: list[RunInput]) -> ImportCount: ...


RUNS = describe(Runs, "runs")


class RemoteRuns(RemoteClient):
    spec = RUNS
