"""B8's baseline (benchmark only): the data service's `list_runs`, written as a team would
write it without the kit.

`bare` is a plain Flask app with a SQLAlchemy session per request on the data service's own
database file (BENCH_DATABASE_URL), answering `POST /rpc/runs/list_runs` with the same body
(`{"args": {"user_id", "year", "month"}}`), the same two queries as the service (the user
must exist, then the month's runs in date order), run the same way (Core statements built
once, on a session's connection: what LocalRuns does since issue 12; the ORM queries of the
first version cost ~500 µs more a request, which made the kit look cheaper than "bare"), and
the same JSON shape (`{"result": [...]}`, date-times in RFC 3339 UTC). No token, no contract
decoding, no tracing, no metrics, no log line, no ETag: everything the kit adds is what B8
measures.
"""

from gevent import monkey

monkey.patch_all()

import datetime as dt  # noqa: E402
import os  # noqa: E402

from flask import Flask, abort, jsonify, request  # noqa: E402
from sqlalchemy import bindparam, create_engine, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from monolith.models import Run, User  # noqa: E402

RUN_FIELDS = ("id", "user_id", "name", "distance", "start_date", "elapsed_time",
              "average_speed", "average_heartrate", "total_elevation_gain", "strava_id")
_RUNS, _USERS = Run.__table__, User.__table__
USER_EXISTS = select(_USERS.c.id).where(_USERS.c.id == bindparam("user_id"))
RUNS_IN_MONTH = (select(*(_RUNS.c[name] for name in RUN_FIELDS))
                 .where(_RUNS.c.user_id == bindparam("user_id"),
                        _RUNS.c.start_date >= bindparam("start"),
                        _RUNS.c.start_date < bindparam("end"))
                 .order_by(_RUNS.c.start_date, _RUNS.c.id))


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
            connection = session.connection()
            if connection.execute(USER_EXISTS, {"user_id": user_id}).first() is None:
                abort(404)
            rows = connection.execute(RUNS_IN_MONTH, {"user_id": user_id, "start": start,
                                                      "end": end})
            result = [dict(zip(RUN_FIELDS, row, strict=True)) for row in rows]
        for row in result:
            row["start_date"] = _utc(row["start_date"])
        return jsonify({"result": result})

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


bare = _create_bare() if os.environ.get("BENCH_DATABASE_URL") else None
