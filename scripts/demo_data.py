"""Create the embedded databases and seed them with a demo runner, an admin, runs and races.

    python -m scripts.demo_data      (scripts/start runs it before `turnout up`)

Idempotent: an account that already exists is left as it is, so running it
twice (or after a user changed the demo data) never duplicates or overwrites.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass

from monolith.accounts.service import LocalAccounts
from monolith.config import load_config
from monolith.db import create_schema, make_engine, make_sessions
from monolith.races.service import LocalRaces
from monolith.runs.service import LocalRuns
from contracts.accounts import Profile, SignUp, UserRecord
from contracts.races import RaceInput
from contracts.runs import RunInput
from shims.errors import Conflict
from shims.settings import ConfigError

DEMO_EMAIL = "demo@runnerly.dev"
# Published demo login, not a secret.
DEMO_PASSWORD = "runnerly-demo"  # nosec B105
ADMIN_EMAIL = "admin@runnerly.dev"
# Published demo login, not a secret.
ADMIN_PASSWORD = "runnerly-admin"  # nosec B105
# The Strava dev server's demo token.
DEMO_STRAVA_TOKEN = "demo-strava-token"  # nosec B105


@dataclass(frozen=True)
class Seeded:
    database_url: str
    created: list[str]


@dataclass(frozen=True)
class LocalFeatures:
    """The monolith's own implementations: demo data always lands in the monolith's
    database, whatever the flags route to (copy it on with `turnout data copy`)."""

    accounts: LocalAccounts
    runs: LocalRuns
    races: LocalRaces


def seed(config: dict | None = None, today: dt.date | None = None) -> Seeded:
    today = today or dt.date.today()
    settings = load_config(config)
    engine = make_engine(settings["DATABASE_URL"])
    create_schema(engine)
    sessions = make_sessions(engine)
    created: list[str] = []
    f = LocalFeatures(LocalAccounts(sessions, hash_method=settings["PASSWORD_HASH_METHOD"]),
                      LocalRuns(sessions), LocalRaces(sessions))
    admin = _account(f, ADMIN_EMAIL, ADMIN_PASSWORD,
                     Profile(first_name="Ada", last_name="Admin"), is_admin=True,
                     created=created)
    demo = _account(f, DEMO_EMAIL, DEMO_PASSWORD,
                    Profile(first_name="Demo", last_name="Runner", age=34, weight=68.0,
                            max_hr=188, rest_hr=52, vo2max=51.0), created=created)
    if demo is not None:
        f.accounts.link_strava(demo.id, DEMO_STRAVA_TOKEN)
        for run in demo_runs(today):
            f.runs.add_run(demo.id, run)
        created.append(f"{len(demo_runs(today))} runs for {DEMO_EMAIL}")
    if admin is not None:
        for race in demo_races(today):
            f.races.create_race(admin.id, race)
        created.append(f"{len(demo_races(today))} races")
    engine.dispose()
    return Seeded(database_url=settings["DATABASE_URL"], created=created)


def _account(f: LocalFeatures, email: str, password: str, profile: Profile, *, created: list[str],
             is_admin: bool = False) -> UserRecord | None:
    try:
        user = f.accounts.sign_up(SignUp(email=email, password=password, profile=profile),
                                  is_admin=is_admin)
    except Conflict:
        return None  # already seeded: leave it alone
    created.append(f"{'admin' if is_admin else 'runner'} {email}")
    return user


def demo_runs(today: dt.date) -> list[RunInput]:
    """A few hand-entered runs this month and last, so reports are never empty."""
    first = today.replace(day=1)
    last_month = (first - dt.timedelta(days=1)).replace(day=1)
    plan = [(last_month, 3, "Tempo run", 8000, 2520, 162),
            (last_month, 10, "Long run", 18000, 6300, 148),
            (last_month, 17, "Intervals", 6000, 1740, 171),
            (first, 1, "Easy run", 5000, 1800, 139)]
    runs = []
    for month_start, day, name, distance, seconds, heartrate in plan:
        day = min(day, 28)
        start = dt.datetime.combine(month_start.replace(day=day), dt.time(18, 0))
        runs.append(RunInput(name=name, distance=distance, start_date=start, elapsed_time=seconds,
                             average_heartrate=heartrate, total_elevation_gain=40.0))
    return runs


def demo_races(today: dt.date) -> list[RaceInput]:
    return [RaceInput(name="Runnerly 10K", date=today + dt.timedelta(days=42), distance=10000,
                      location="Riverside Park"),
            RaceInput(name="City Half Marathon", date=today + dt.timedelta(days=98),
                      distance=21097.5, location="Old Town")]


def main() -> int:
    """Runnerly's own command (the kit's `turnout` knows nothing of demo data)."""
    try:
        result = seed()
    except ConfigError as exc:  # a malformed TURNOUT_* variable: one line, no traceback
        print(f"demo data: {exc}", file=sys.stderr)
        return 2
    print(f"database: {result.database_url}")
    created = ", ".join(result.created) if result.created else "nothing (already seeded)"
    print(f"created: {created}")
    print(f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}   admin: {ADMIN_EMAIL} / {ADMIN_PASSWORD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
