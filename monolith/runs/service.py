"""LocalRuns: the monolith's own implementation of the Runs contract."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monolith.models import Run, User
from shims import fields
from contracts import possible_id
from contracts.runs import ImportCount, RunInput, RunRecord
from shims.errors import NotFound
from shims.wire import checked


def run_record(run: Run) -> RunRecord:
    return RunRecord(id=run.id, user_id=run.user_id, name=run.name, distance=run.distance,
                     start_date=run.start_date, elapsed_time=run.elapsed_time,
                     average_speed=run.average_speed, average_heartrate=run.average_heartrate,
                     total_elevation_gain=run.total_elevation_gain, strava_id=run.strava_id)


_RUNS, _USERS = Run.__table__, User.__table__
# Built once, executed with bound values: the read path runs Core statements on the
# session's connection, not ORM queries. A month of runs through the ORM (statement built
# per call, a User loaded to prove the runner exists, a Run instance per row, then a
# RunRecord) cost ~640 us per call; most of it was the ORM's, for rows only read.
_USER_EXISTS = select(_USERS.c.id).where(_USERS.c.id == bindparam("user_id"))
_RUNS_IN_MONTH = (select(*(_RUNS.c[field.name] for field in dataclasses.fields(RunRecord)))
                  .where(_RUNS.c.user_id == bindparam("user_id"),
                         _RUNS.c.start_date >= bindparam("start"),
                         _RUNS.c.start_date < bindparam("end"))
                  .order_by(_RUNS.c.start_date, _RUNS.c.id))


def month_bounds(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(year, month, 1)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1)
    return start, end


class LocalRuns:
    def __init__(self, sessions: sessionmaker):
        self._sessions = sessions

    def list_runs(self, user_id: int, year: int, month: int) -> list[RunRecord]:
        start, end = month_bounds(*fields.month(year, month))
        with self._sessions() as session:
            connection = session.connection()  # a keyed write's, when one is joined
            _require_user_row(connection, user_id)
            rows = connection.execute(_RUNS_IN_MONTH, {"user_id": user_id, "start": start,
                                                       "end": end})
            return [RunRecord(*row) for row in rows]

    def get_run(self, user_id: int, run_id: int) -> RunRecord:
        with self._sessions() as session:
            return run_record(_owned_run(session, user_id, run_id))

    def add_run(self, user_id: int, run: RunInput) -> RunRecord:
        run = checked(RunInput, run, "run")
        with self._sessions.begin() as session:
            _require_user(session, user_id)
            row = Run(user_id=user_id, **_columns(run))
            session.add(row)
            session.flush()
            return run_record(row)

    def update_run(self, user_id: int, run_id: int, run: RunInput) -> RunRecord:
        run = checked(RunInput, run, "run")
        with self._sessions.begin() as session:
            row = _owned_run(session, user_id, run_id)
            columns = _columns(run)
            columns.pop("strava_id")  # an edit never changes where the run came from
            for name, value in columns.items():
                setattr(row, name, value)
            return run_record(row)

    def delete_run(self, user_id: int, run_id: int) -> None:
        with self._sessions.begin() as session:
            session.delete(_owned_run(session, user_id, run_id))

    def import_runs(self, user_id: int, runs: list[RunInput]) -> ImportCount:
        """Add runs not seen before, de-duplicated by Strava id, in one transaction."""
        runs = checked(list[RunInput], runs, "runs")
        try:
            return self._import_once(user_id, runs)
        except IntegrityError:
            # A concurrent import inserted some of the same Strava ids between our read
            # and our write; the retry sees them and skips them.
            return self._import_once(user_id, runs)

    def _import_once(self, user_id: int, runs: list[RunInput]) -> ImportCount:
        with self._sessions.begin() as session:
            _require_user(session, user_id)
            ids = {run.strava_id for run in runs if run.strava_id is not None}
            known = set(session.scalars(select(Run.strava_id).where(
                Run.user_id == user_id, Run.strava_id.in_(ids)))) if ids else set()
            created = 0
            for run in runs:
                if run.strava_id is not None and run.strava_id in known:
                    continue
                known.add(run.strava_id)
                session.add(Run(user_id=user_id, **_columns(run)))
                created += 1
            return ImportCount(created=created, skipped=len(runs) - created)


def _columns(run: RunInput) -> dict:
    return {"name": run.name, "distance": run.distance, "start_date": run.start_date,
            "elapsed_time": run.elapsed_time, "average_speed": run.average_speed,
            "average_heartrate": run.average_heartrate,
            "total_elevation_gain": run.total_elevation_gain, "strava_id": run.strava_id}


def _require_user(session: Session, user_id: int) -> None:
    if not possible_id(user_id) or session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")


def _require_user_row(connection: Connection, user_id: int) -> None:
    if not possible_id(user_id) or \
            connection.execute(_USER_EXISTS, {"user_id": user_id}).first() is None:
        raise NotFound(f"user {user_id} not found")


def _owned_run(session: Session, user_id: int, run_id: int) -> Run:
    run = session.get(Run, run_id) if possible_id(run_id) else None
    # Another runner's run is reported exactly like a missing one: ids leak nothing.
    if run is None or run.user_id != user_id:
        raise NotFound(f"run {run_id} not found")
    return run
