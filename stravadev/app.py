"""The Strava development server: the slice of Strava's v3 API Runnerly uses.

- `GET /api/v3/athlete`: the athlete behind the bearer token;
- `GET /api/v3/athlete/activities?after=&before=&page=&per_page=`: newest first, like Strava;
- `POST /api/v3/activities`: create a manual activity (how tests and demos add new ones);
- `GET /healthz`.

Athletes and their seeded activities live in memory, generated deterministically
from the token and the day the server starts, so every start shows a familiar,
recent history. Run it with a single worker: each process has its own memory.
Tokens come from `TURNOUT_STRAVA_TOKENS` (comma-separated `token:athlete name`);
the default is the demo runner's development token, which is not a secret.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request

DEFAULT_TOKENS = "demo-strava-token:Demo Runner"
SEED_DAYS = 60


@dataclass
class Athlete:
    id: int
    name: str
    activities: list[dict[str, Any]] = field(default_factory=list)


def parse_tokens(raw: str) -> dict[str, str]:
    tokens = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        token, _, name = item.partition(":")
        if not token:
            raise ValueError(f"TURNOUT_STRAVA_TOKENS entry {item!r} has no token")
        tokens[token] = name or "Strava athlete"
    return tokens


def seed_activities(athlete_id: int, token: str, today: dt.date) -> list[dict[str, Any]]:
    """About one activity every two days over SEED_DAYS, mostly runs, some rides."""
    # Deterministic demo data, not security.
    rng = random.Random(token)  # nosec B311
    activities = []
    for days_ago in range(SEED_DAYS, 0, -1):
        if rng.random() < 0.5:
            continue
        start = dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(6, 30)) \
            + dt.timedelta(minutes=rng.randint(0, 120))
        kind = "Ride" if rng.random() < 0.15 else "Run"
        distance = round(rng.uniform(4000, 21000), 1) if kind == "Run" \
            else round(rng.uniform(15000, 60000), 1)
        speed = rng.uniform(2.6, 3.8) if kind == "Run" else rng.uniform(6, 9)
        elapsed = int(distance / speed)
        activities.append(_activity(athlete_id * 100_000 + days_ago, athlete_id, {
            "name": f"{'Morning' if start.hour < 12 else 'Lunch'} {kind}",
            "type": kind, "distance": distance, "elapsed_time": elapsed,
            "start_date": start.isoformat() + "Z",
            "average_heartrate": round(rng.uniform(135, 168), 1),
            "total_elevation_gain": round(rng.uniform(0, 250), 1),
        }))
    return activities


def _activity(activity_id: int, athlete_id: int, values: dict[str, Any]) -> dict[str, Any]:
    moving = values["elapsed_time"]
    return {"id": activity_id, "athlete": {"id": athlete_id}, "sport_type": values["type"],
            "moving_time": moving, "average_speed": round(values["distance"] / moving, 3),
            "manual": False, **values}


def _epoch(activity: dict[str, Any]) -> float:
    start = dt.datetime.fromisoformat(activity["start_date"].replace("Z", "+00:00"))
    return start.timestamp()


class StravaStore:
    def __init__(self, tokens: dict[str, str], today: dt.date):
        self._lock = threading.Lock()
        self._athletes = {}
        for number, (token, name) in enumerate(sorted(tokens.items()), start=1):
            self._athletes[token] = Athlete(id=number, name=name,
                                            activities=seed_activities(number, token, today))
        self._next_id = 10_000_000

    def athlete(self, token: str) -> Athlete | None:
        return self._athletes.get(token)

    def add(self, athlete: Athlete, values: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            activity = _activity(self._next_id, athlete.id, values)
            activity["manual"] = True
            athlete.activities.append(activity)
            return activity


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    config = config or {}
    raw_tokens = config.get("TOKENS") or os.environ.get("TURNOUT_STRAVA_TOKENS") or DEFAULT_TOKENS
    store = StravaStore(parse_tokens(raw_tokens), config.get("TODAY") or dt.date.today())

    def error(status: int, message: str, field_name: str | None = None):
        body: dict[str, Any] = {"message": message, "errors": []}
        if field_name:
            body["errors"].append({"field": field_name, "code": "invalid"})
        return jsonify(body), status

    def current_athlete() -> Athlete | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return store.athlete(token.strip()) if scheme.lower() == "bearer" else None

    def int_arg(name: str, default: int, low: int, high: int) -> int:
        raw = request.args.get(name)
        if raw is None:
            return default
        value = int(raw)  # ValueError is answered as 400 below
        if not low <= value <= high:
            raise ValueError(name)
        return value

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "service": "stravadev"})

    @app.get("/api/v3/athlete")
    def athlete():
        who = current_athlete()
        if who is None:
            return error(401, "Authorization Error", "access_token")
        first, _, last = who.name.partition(" ")
        return jsonify({"id": who.id, "firstname": first, "lastname": last})

    @app.get("/api/v3/athlete/activities")
    def activities():
        who = current_athlete()
        if who is None:
            return error(401, "Authorization Error", "access_token")
        try:
            after = int_arg("after", 0, 0, 2**40)
            before = int_arg("before", 2**40, 0, 2**40)
            page = int_arg("page", 1, 1, 10_000)
            per_page = int_arg("per_page", 30, 1, 200)
        except ValueError:
            return error(400, "Bad Request: after, before, page and per_page must be integers "
                              "in range", "query")
        chosen = [a for a in who.activities if after < _epoch(a) < before]
        chosen.sort(key=_epoch, reverse=True)
        return jsonify(chosen[(page - 1) * per_page: page * per_page])

    @app.post("/api/v3/activities")
    def create_activity():
        who = current_athlete()
        if who is None:
            return error(401, "Authorization Error", "access_token")
        data = request.get_json(force=True, silent=True)
        values, problem = _activity_values(data)
        if problem:
            return error(400, f"Bad Request: {problem}", problem.split()[0])
        return jsonify(store.add(who, values)), 201

    return app


def _activity_values(data: Any) -> tuple[dict[str, Any], str | None]:
    if not isinstance(data, dict):
        return {}, "body must be a JSON object"
    name, kind = data.get("name"), data.get("type", "Run")
    distance, elapsed = data.get("distance"), data.get("elapsed_time")
    start = data.get("start_date_local") or data.get("start_date")
    if not isinstance(name, str) or not name:
        return {}, "name is required"
    if not isinstance(distance, (int, float)) or isinstance(distance, bool) or distance <= 0:
        return {}, "distance must be a positive number"
    if not isinstance(elapsed, int) or isinstance(elapsed, bool) or elapsed <= 0:
        return {}, "elapsed_time must be a positive integer"
    try:
        parsed = dt.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    except ValueError:
        return {}, "start_date must be an ISO 8601 date-time"
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return {"name": name, "type": str(kind), "distance": float(distance), "elapsed_time": elapsed,
            "start_date": parsed.isoformat() + "Z",
            "average_heartrate": data.get("average_heartrate"),
            "total_elevation_gain": data.get("total_elevation_gain", 0.0)}, None
