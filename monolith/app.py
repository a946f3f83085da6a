"""The Runnerly app factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from monolith import auth, errors, idempotent_api
from monolith.config import load_config, read_or_create_secret
from monolith.db import create_schema, make_engine, make_sessions
from shims.ops import loopback_only
from shims import deadline, trace
from shims.admin import admin_blueprint
from shims.auth import verifying_guard
from contracts.accounts import ACCOUNTS
from contracts.runs import RUNS
from shims.health import health_blueprint
from shims.metrics import metrics_blueprint
from shims.outcomes import OutcomeStore
from shims.service import rpc_blueprint
from monolith.wiring import (CONTROL_KEY, EXTENSION_KEY, build_control, build_features,
                             serving_flags)

log = logging.getLogger(__name__)


def _blueprints():
    from monolith.accounts import api as accounts_api, html as accounts_html
    from monolith.races import api as races_api, html as races_html
    from monolith.reports import api as reports_api, html as reports_html
    from monolith.runs import api as runs_api, html as runs_html
    from monolith.strava import api as strava_api, html as strava_html

    html = [accounts_html.bp, runs_html.bp, strava_html.bp, reports_html.bp, races_html.bp]
    api = [accounts_api.bp, runs_api.bp, strava_api.bp, reports_api.bp, races_api.bp]
    return html, api


def _report_routes(app: Flask) -> None:
    """Every response says which side answered each routed call (shims/trace.py)."""
    app.before_request(trace.start)

    @app.after_request
    def add_route_header(response):
        value = trace.header_value()
        if value:
            response.headers[trace.HEADER] = value
        return response


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = load_config(config)
    app = Flask(__name__)
    app.config.update(settings)
    deadline.install(app, settings["REQUEST_DEADLINE"])  # first: every later hook within it
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = read_or_create_secret(settings["RUN_DIR"])

    engine = make_engine(settings["DATABASE_URL"], pool_size=settings["DB_POOL_SIZE"],
                         max_overflow=settings["DB_MAX_OVERFLOW"],
                         pool_timeout=settings["DB_POOL_TIMEOUT"])
    create_schema(engine)
    app.extensions["runnerly_engine"] = engine
    outcomes = OutcomeStore(engine, ttl=settings["IDEMPOTENCY_TTL"])
    outcomes.create_schema()
    turnout = build_control(settings)
    app.extensions[CONTROL_KEY] = turnout
    app.extensions[EXTENSION_KEY] = build_features(settings, make_sessions(engine), engine,
                                                   turnout, outcomes)

    _report_routes(app)
    csrf = CSRFProtect(app)
    auth.init_app(app)
    idempotent_api.init_app(app, outcomes)  # after auth: keys are scoped to the runner
    errors.init_app(app)
    html, api = _blueprints()
    for blueprint in api:
        csrf.exempt(blueprint)  # the API authenticates each request; no cookies, no CSRF
        app.register_blueprint(blueprint)
    for blueprint in html:
        app.register_blueprint(blueprint)
    # The data contracts as the monolith routes them, for extracted services that read and
    # write users and runs (Newman's "aggregate exposing monolith"): whatever the runs flag
    # says, their calls land where the monolith's own calls would.
    routed = app.extensions[EXTENSION_KEY]
    for blueprint in (rpc_blueprint([(ACCOUNTS, routed.accounts), (RUNS, routed.runs)],
                                    observe=turnout.metrics.observe_served,
                                    guard=verifying_guard(settings, "monolith")),
                      health_blueprint("monolith", engine, lambda: serving_flags(turnout)),
                      metrics_blueprint(turnout.metrics),
                      admin_blueprint(turnout.store, turnout.flags, turnout.mismatches,
                                      turnout.breakers, authorize=auth.admin_actor,
                                      channels={"runs": routed.runs.channels})):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
    loopback_only(app)
    return app
