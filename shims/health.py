"""`GET /healthz` for any Turnout app: the process answers and its database does too."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError


def health_blueprint(service: str, engine: Engine,
                     details: Callable[[], dict[str, Any]] | None = None) -> Blueprint:
    """`details` adds process facts (e.g. the flags this worker serves) to the answer."""
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz():
        body = {"service": service, "pid": os.getpid(), **(details() if details else {})}
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            response = jsonify({**body, "status": "failing", "database": type(exc).__name__})
            response.status_code = 503
            return response
        return jsonify({**body, "status": "ok"})

    return blueprint
