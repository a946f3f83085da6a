"""`GET /healthz`: the process is up and its database answers."""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monolith.web import json_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    try:
        with current_app.extensions["runnerly_engine"].connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return json_response({"status": "failing", "service": "monolith",
                              "database": type(exc).__name__}, 503)
    return json_response({"status": "ok", "service": "monolith"})
