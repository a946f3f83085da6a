"""LocalRaces: the monolith's own implementation of the Races contract."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from monolith.models import PlannedRun, Race, RaceEntry, User
from contracts import possible_id
from contracts.races import PlannedRunInput, PlannedRunRecord, RaceInput, RaceRecord
from shims.errors import Conflict, Forbidden, NotFound, ValidationError

MAX_PLAN_WEEKS = 52
# A race day is over once it has ended everywhere on Earth, at UTC-12: a runner west of the
# server may still enter a race on their today that the server's date calls yesterday.
LAST_TIME_ZONE = dt.timedelta(hours=12)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class LocalRaces:
    def __init__(self, sessions: sessionmaker, *, clock: Callable[[], dt.datetime] = utc_now):
        """`clock`: the current time, timezone-aware (tests pass a fixed one)."""
        self._sessions = sessions
        self._clock = clock

    def _is_over(self, day: dt.date) -> bool:
        return day < (self._clock().astimezone(dt.timezone.utc) - LAST_TIME_ZONE).date()

    def list_races(self, user_id: int) -> list[RaceRecord]:
        with self._sessions() as session:
            races = session.scalars(select(Race).order_by(Race.date, Race.id)).all()
            return [_race_record(session, race, user_id) for race in races]

    def get_race(self, user_id: int, race_id: int) -> RaceRecord:
        with self._sessions() as session:
            return _race_record(session, _load_race(session, race_id), user_id)

    def create_race(self, user_id: int, race: RaceInput) -> RaceRecord:
        if self._is_over(race.date):
            # 409, not 400: the date is well formed, and was acceptable until time moved on
            raise Conflict(f"date must be today or later; {race.date} has passed", field="date")
        with self._sessions.begin() as session:
            _require_user(session, user_id)
            row = Race(name=race.name, date=race.date, distance=race.distance,
                       location=race.location, created_by=user_id)
            session.add(row)
            session.flush()
            return _race_record(session, row, user_id)

    def delete_race(self, user_id: int, race_id: int) -> None:
        with self._sessions.begin() as session:
            race = _load_race(session, race_id)
            user = _require_user(session, user_id)
            if race.created_by != user_id and not user.is_admin:
                raise Forbidden(f"only the runner who created race {race_id} or an admin may "
                                "delete it")
            session.delete(race)

    def join_race(self, user_id: int, race_id: int) -> RaceRecord:
        with self._sessions.begin() as session:
            race = _load_race(session, race_id)
            _require_user(session, user_id)
            if self._is_over(race.date):
                raise Conflict(f"race {race_id} was on {race.date}: a race in the past cannot "
                               "be joined", field="date")
            if session.get(RaceEntry, (race_id, user_id)) is not None:
                raise Conflict(f"you have already joined race {race_id}")
            session.add(RaceEntry(race_id=race_id, user_id=user_id))
            session.flush()
            return _race_record(session, race, user_id)

    def leave_race(self, user_id: int, race_id: int) -> RaceRecord:
        """Leaving drops the runner's plan for that race too, in the same transaction."""
        with self._sessions.begin() as session:
            race = _load_race(session, race_id)
            entry = session.get(RaceEntry, (race_id, user_id))
            if entry is None:
                raise Conflict(f"you have not joined race {race_id}")
            session.delete(entry)
            session.execute(delete(PlannedRun).where(PlannedRun.race_id == race_id,
                                                     PlannedRun.user_id == user_id))
            session.flush()
            return _race_record(session, race, user_id)

    def plan(self, user_id: int, race_id: int) -> list[PlannedRunRecord]:
        with self._sessions() as session:
            _require_entry(session, user_id, race_id)
            return _plan_records(session, user_id, race_id)

    def add_planned_run(self, user_id: int, race_id: int,
                        planned: PlannedRunInput) -> PlannedRunRecord:
        with self._sessions.begin() as session:
            race = _require_entry(session, user_id, race_id)
            if planned.date > race.date:
                raise ValidationError(f"date must be on or before the race day {race.date}",
                                      field="date")
            row = PlannedRun(race_id=race_id, user_id=user_id, date=planned.date,
                             distance=planned.distance, description=planned.description)
            session.add(row)
            session.flush()
            return _planned_record(row)

    def delete_planned_run(self, user_id: int, race_id: int, planned_id: int) -> None:
        with self._sessions.begin() as session:
            _require_entry(session, user_id, race_id)
            row = session.get(PlannedRun, planned_id) if possible_id(planned_id) else None
            if row is None or row.user_id != user_id or row.race_id != race_id:
                raise NotFound(f"planned run {planned_id} not found")
            session.delete(row)

    def generate_plan(self, user_id: int, race_id: int, runs_per_week: int,
                      start: dt.date) -> list[PlannedRunRecord]:
        """Replace the plan with a progressive one: weekly volume grows to the race,
        with the last week tapered. A simple, explainable plan, not coaching advice."""
        if not 1 <= runs_per_week <= 7:
            raise ValidationError("runs_per_week must be between 1 and 7", field="runs_per_week")
        with self._sessions.begin() as session:
            race = _require_entry(session, user_id, race_id)
            if race.date <= start:
                raise Conflict(f"race {race_id} is on {race.date}; there is no time left to plan")
            session.execute(delete(PlannedRun).where(PlannedRun.race_id == race_id,
                                                     PlannedRun.user_id == user_id))
            for date, distance, description in plan_schedule(start, race.date, race.distance,
                                                             runs_per_week):
                session.add(PlannedRun(race_id=race_id, user_id=user_id, date=date,
                                       distance=distance, description=description))
            session.flush()
            return _plan_records(session, user_id, race_id)


def plan_schedule(start: dt.date, race_day: dt.date, race_distance: float,
                  runs_per_week: int) -> list[tuple[dt.date, float, str]]:
    # A plan is at most MAX_PLAN_WEEKS long and must end at the race (that is where the
    # build-up and the taper belong), so for a race further away it starts later.
    start = max(start, race_day - dt.timedelta(weeks=MAX_PLAN_WEEKS))
    days = (race_day - start).days
    weeks = max(1, min(MAX_PLAN_WEEKS, days // 7))
    spacing = max(1, 7 // runs_per_week)
    schedule = []
    for week in range(weeks):
        tapering = week == weeks - 1 and weeks > 1
        share = 0.5 if tapering else 0.4 + 0.6 * (week + 1) / weeks
        long_run = round(race_distance * min(share, 0.9), -2) or 1000.0
        for slot in range(runs_per_week):
            day = start + dt.timedelta(days=week * 7 + slot * spacing)
            if day >= race_day:
                break
            is_long = slot == runs_per_week - 1
            distance = long_run if is_long else max(1000.0, round(long_run * 0.5, -2))
            label = "long run" if is_long else "easy run"
            schedule.append((day, distance, f"week {week + 1}: {label}"
                             + (" (taper)" if tapering else "")))
    return schedule


def _race_record(session: Session, race: Race, user_id: int) -> RaceRecord:
    count = session.scalar(select(func.count()).select_from(RaceEntry)
                           .where(RaceEntry.race_id == race.id))
    joined = session.get(RaceEntry, (race.id, user_id)) is not None
    return RaceRecord(id=race.id, name=race.name, date=race.date, distance=race.distance,
                      location=race.location, created_by=race.created_by,
                      runner_count=count, joined=joined)


def _planned_record(row: PlannedRun) -> PlannedRunRecord:
    return PlannedRunRecord(id=row.id, race_id=row.race_id, user_id=row.user_id, date=row.date,
                            distance=row.distance, description=row.description)


def _plan_records(session: Session, user_id: int, race_id: int) -> list[PlannedRunRecord]:
    rows = session.scalars(select(PlannedRun).where(PlannedRun.race_id == race_id,
                                                    PlannedRun.user_id == user_id)
                           .order_by(PlannedRun.date, PlannedRun.id))
    return [_planned_record(row) for row in rows]


def _load_race(session: Session, race_id: int) -> Race:
    race = session.get(Race, race_id) if possible_id(race_id) else None
    if race is None:
        raise NotFound(f"race {race_id} not found")
    return race


def _require_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if possible_id(user_id) else None
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def _require_entry(session: Session, user_id: int, race_id: int) -> Race:
    race = _load_race(session, race_id)
    if session.get(RaceEntry, (race_id, user_id)) is None:
        raise Conflict(f"join race {race_id} before planning for it")
    return race
