"""B8's baseline (benchmark only): the data service's `list_runs`, written as a team would
write it without the kit.

`bare` is a plain Flask app with a SQLAlchemy session per request on the data service's own
database file (BENCH_DATABASE_URL), answering `POST /rpc/runs/list_runs` with the same body
(`{"args": {"user_id", "year", "month"}}`), the same two queries as the service (the user
must exist, then the month's runs in date order, through the ORM) and the same JSON shape
(`{"result": [...]}`, date-times in RFC 3339 UTC). No token, no contract decoding, no
tracing, no metrics, no log line, no ETag: everything the kit adds is what B8 measures.
"""

from gevent import monkey

monkey.patch_all()

import datetime as dt  # noqa: E402
import os  # noqa: E402

from flask import Flask, abort, jsonify, request  # noqa: E402
from sqlalchemy import create_engine, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from monolith.models import Run, User  # noqa: E402

RUN_FIELDS = ("id", "user_id", "name", "distance", "start_date", "elapsed_time",
              "average_speed", "average_heartrate", "total_elevation_gain", "strava_id")


def _utc(value: dt.datetime) -> str:
    return value.replace(tzinfo=dt.timezone.utc).isoformat()


def _create_bare() -> Flask:
    app = Flask("bench-bare")
    engine = create_engine(os.environ["BENCH_DATABASE_URL"],
                           connect_args={"check_same_thread": False})
    sessions = sessionmaker(engine, expire_on_commit=False)

    @app.post("/rpc/runs/list_runs")
    def list_runs():
        args = request.get_json()["args"]
        user_id, year, month = int(args["user_id"]), int(args["year"]), int(args["month"])
        start = dt.datetime(year, month, 1)
        end = dt.datetime(year + (month == 12), month % 12 + 1, 1)
        with sessions() as session:
            if session.get(User, user_id) is None:
                abort(404)
            runs = session.scalars(select(Run).where(
                Run.user_id == user_id, Run.start_date >= start, Run.start_date < end)
                .order_by(Run.start_date, Run.id))
            result = [{name: getattr(run, name) for name in RUN_FIELDS} for run in runs]
        for row in result:
            row["start_date"] = _utc(row["start_date"])
        return jsonify({"result": result})

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


bare = _create_bare() if os.environ.get("BENCH_DATABASE_URL") else None
