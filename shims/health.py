"""`GET /healthz` for any Turnout app: the process answers and its database does too."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError


def health_blueprint(service: str, engine: Engine | None = None,
                     details: Callable[[], dict[str, Any]] | None = None) -> Blueprint:
    """`details` adds process facts (e.g. the flags this worker serves) to the answer.

    Only the process's own database is checked, never another service: a health check
    that calls its dependencies cascades (one slow data service turns every service above
    it "failing", and the supervisor restarts processes that can do nothing about it). A
    dependency that is down shows in the answers that needed it, in `/metrics`, and in its
    own `/healthz`.
    """
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz():
        body = {"service": service, "pid": os.getpid(), **(details() if details else {})}
        if engine is None:
            return jsonify({**body, "status": "ok"})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            response = jsonify({**body, "status": "failing", "database": type(exc).__name__})
            response.status_code = 503
            return response
        return jsonify({**body, "status": "ok"})

    return blueprint
