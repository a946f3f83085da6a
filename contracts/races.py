"""Races and training plans: shared races a runner joins, and a plan of runs towards one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from shims import fields
from shims.contract import describe, read, write
from shims.ids import Id
from shims.limits import Limits
from shims.remote import RemoteClient

Distance = Annotated[float, Limits(minimum=100, maximum=1_000_000)]  # metres
Day = Annotated[dt.date, fields.DATE_LIMITS]
RunsPerWeek = Annotated[int, Limits(minimum=1, maximum=7)]


def _distance(data: Mapping[str, Any]) -> float:
    """As `Distance` limits it: metres, from 100 m to 1000 km."""
    return float(fields.number(data, "distance", minimum=100, maximum=1_000_000))


@dataclass(frozen=True)
class RaceInput:
    name: Annotated[str, fields.text_limits(200)]
    date: Day
    distance: Distance
    location: Annotated[str, fields.text_limits(200, required=False)] = ""

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RaceInput:
        problems = fields.Problems()
        problems.parse(fields.only_known, data, {"name", "date", "distance", "location"})
        name = problems.parse(fields.text, data, "name", max_length=200)
        date = problems.parse(fields.date, data, "date")
        distance = problems.parse(_distance, data)
        location = problems.parse(fields.text, data, "location", required=False, default="")
        problems.raise_any()
        return cls(name=name, date=date, distance=distance, location=location)


    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RaceInput:
        return cls.parse(data)


@dataclass(frozen=True)
class RaceRecord:
    id: Id
    name: str
    date: dt.date
    distance: float
    location: str
    created_by: Id | None
    runner_count: int
    joined: bool  # has the asking runner joined it


@dataclass(frozen=True)
class PlannedRunInput:
    date: Day
    distance: Distance
    description: Annotated[str, fields.text_limits(200, required=False)] = ""

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> PlannedRunInput:
        problems = fields.Problems()
        problems.parse(fields.only_known, data, {"date", "distance", "description"})
        date = problems.parse(fields.date, data, "date")
        distance = problems.parse(_distance, data)
        description = problems.parse(fields.text, data, "description", required=False,
                                     default="")
        problems.raise_any()
        return cls(date=date, distance=distance, description=description)


    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PlannedRunInput:
        return cls.parse(data)


@dataclass(frozen=True)
class PlannedRunRecord:
    id: Id
    race_id: Id
    user_id: Id
    date: dt.date
    distance: float
    description: str


class Races(Protocol):
    @read
    def list_races(self, user_id: Id) -> list[RaceRecord]: ...
    @read
    def get_race(self, user_id: Id, race_id: Id) -> RaceRecord: ...
    @write
    def create_race(self, user_id: Id, race: RaceInput) -> RaceRecord: ...
    @write
    def delete_race(self, user_id: Id, race_id: Id) -> None: ...
    @write
    def join_race(self, user_id: Id, race_id: Id) -> RaceRecord: ...
    @write
    def leave_race(self, user_id: Id, race_id: Id) -> RaceRecord: ...
    @read
    def plan(self, user_id: Id, race_id: Id) -> list[PlannedRunRecord]: ...
    @write
    def add_planned_run(self, user_id: Id, race_id: Id,
                        planned: PlannedRunInput) -> PlannedRunRecord: ...
    @write
    def delete_planned_run(self, user_id: Id, race_id: Id, planned_id: Id) -> None: ...
    @write
    def generate_plan(self, user_id: Id, race_id: Id, runs_per_week: RunsPerWeek,
                      start: Day) -> list[PlannedRunRecord]: ...


RACES = describe(Races, "races")


class RemoteRaces(RemoteClient):
    """The races contract over HTTP (or in-process WSGI), for an extracted service."""

    spec = RACES
