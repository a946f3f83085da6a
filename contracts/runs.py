"""Runs: a runner's own runs, listed per month, added by hand or imported."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from contracts import MAX_ID
from shims import fields
from shims.contract import describe, read, write
from shims.ids import Id
from shims.limits import Limits
from shims.remote import RemoteClient

RUN_FIELDS = ("name", "distance", "start_date", "elapsed_time", "average_heartrate",
              "total_elevation_gain")
MAX_DISTANCE_M = 1_000_000  # 1000 km: beyond any single run
MAX_ELAPSED_S = 7 * 24 * 3600


@dataclass(frozen=True)
class RunInput:
    """The limits on each field are those `parse` enforces (and the OpenAPI shows)."""

    name: Annotated[str, fields.text_limits(200)]
    distance: Annotated[float, Limits(minimum=1, maximum=MAX_DISTANCE_M)]  # metres
    start_date: Annotated[dt.datetime, fields.TIMESTAMP_LIMITS]  # UTC, naive
    elapsed_time: Annotated[int, Limits(minimum=1, maximum=MAX_ELAPSED_S)]  # seconds
    average_heartrate: Annotated[float, Limits(minimum=20, maximum=250)] | None = None
    total_elevation_gain: Annotated[float, Limits(minimum=0, maximum=20000)] | None = None
    strava_id: Annotated[int, Limits(minimum=1, maximum=MAX_ID, format="int64")] | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, allow_strava_id: bool = False) -> RunInput:
        """Every field is checked before any refusal, so it names all that are wrong."""
        allowed = {*RUN_FIELDS} | ({"strava_id"} if allow_strava_id else set())
        problems = fields.Problems()
        problems.parse(fields.only_known, data, allowed)
        values = {
            "name": problems.parse(fields.text, data, "name", max_length=200),
            "distance": problems.parse(fields.number, data, "distance", minimum=1,
                                       maximum=MAX_DISTANCE_M),
            "start_date": problems.parse(fields.timestamp, data, "start_date"),
            "elapsed_time": problems.parse(fields.integer, data, "elapsed_time", minimum=1,
                                           maximum=MAX_ELAPSED_S),
            "average_heartrate": problems.parse(fields.number, data, "average_heartrate",
                                                required=False, minimum=20, maximum=250),
            "total_elevation_gain": problems.parse(fields.number, data, "total_elevation_gain",
                                                   required=False, minimum=0, maximum=20000),
            "strava_id": problems.parse(fields.integer, data, "strava_id", required=False,
                                        minimum=1, maximum=MAX_ID)
            if allow_strava_id else None,
        }
        problems.raise_any()
        return cls(**values | {"distance": float(values["distance"])})

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RunInput:
        return cls.parse(data, allow_strava_id=True)

    @property
    def average_speed(self) -> float:
        return self.distance / self.elapsed_time


@dataclass(frozen=True)
class RunRecord:
    id: Id
    user_id: Id
    name: str
    distance: float
    start_date: dt.datetime
    elapsed_time: int
    average_speed: float
    average_heartrate: float | None
    total_elevation_gain: float | None
    strava_id: Id | None

    @property
    def pace(self) -> float:
        """Seconds per kilometre."""
        return self.elapsed_time / (self.distance / 1000)


@dataclass(frozen=True)
class ImportCount:
    created: int
    skipped: int


class Runs(Protocol):
    @read
    def list_runs(self, user_id: Id, year: Annotated[int, fields.YEAR_LIMITS],
                  month: Annotated[int, fields.MONTH_LIMITS]) -> list[RunRecord]: ...
    @read
    def get_run(self, user_id: Id, run_id: Id) -> RunRecord: ...
    @write
    def add_run(self, user_id: Id, run: RunInput) -> RunRecord: ...
    @write
    def update_run(self, user_id: Id, run_id: Id, run: RunInput) -> RunRecord: ...
    @write
    def delete_run(self, user_id: Id, run_id: Id) -> None: ...
    @write
    def import_runs(self, user_id: Id, runs: list[RunInput]) -> ImportCount: ...


RUNS = describe(Runs, "runs")


class RemoteRuns(RemoteClient):
    """The runs contract over HTTP (or in-process WSGI), for an extracted service."""

    spec = RUNS
