"""The Runnerly app factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, send_from_directory
from flask_wtf.csrf import CSRFProtect

from monolith import api_openapi, auth, errors, field_names, headers, idempotent_api
from monolith.accounts import throttle
from monolith.accounts.grants import SESSION, TOKEN, Grants
from monolith.config import load_config, read_or_create_secret
from monolith.db import create_schema, make_engine, make_sessions
from monolith.wiring import FEATURES_KEY, OUTCOMES, REGISTRY, SESSIONS, typed
from shims.extension import Turnout
from shims.outcomes import OutcomeStore

log = logging.getLogger(__name__)
# Browsers ask for /favicon.ico on every site whatever its pages link to; a day in their
# cache spares the asking on each page, and a changed icon still shows by the next day.
FAVICON_MAX_AGE = 24 * 3600


def favicon() -> Response:
    """Runnerly's icon (drawn by scripts/make_favicon.py), cacheable by anyone for a day."""
    return send_from_directory(current_app.static_folder, "favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=FAVICON_MAX_AGE)


def _blueprints():
    from monolith.accounts import api as accounts_api, html as accounts_html
    from monolith.races import api as races_api, html as races_html
    from monolith.reports import api as reports_api, html as reports_html
    from monolith.runs import api as runs_api, html as runs_html
    from monolith.strava import api as strava_api, html as strava_html

    html = [accounts_html.bp, runs_html.bp, strava_html.bp, reports_html.bp, races_html.bp]
    api = [accounts_api.bp, runs_api.bp, strava_api.bp, reports_api.bp, races_api.bp,
           api_openapi.bp]
    return html, api


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = load_config(config)
    app = Flask(__name__)
    app.config.update(settings)
    app.config["REMEMBER_COOKIE_SECURE"] = settings["SESSION_COOKIE_SECURE"]
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = read_or_create_secret(settings["RUN_DIR"])

    engine = make_engine(settings["DATABASE_URL"], pool_size=settings["DB_POOL_SIZE"],
                         max_overflow=settings["DB_MAX_OVERFLOW"],
                         pool_timeout=settings["DB_POOL_TIMEOUT"])
    create_schema(engine)
    app.extensions["runnerly_engine"] = engine
    outcomes = OutcomeStore(engine, ttl=settings["IDEMPOTENCY_TTL"])
    outcomes.create_schema()
    # First, so its request deadline covers every later hook. `serve`: the data contracts
    # as the monolith routes them, for extracted services that read and write users and
    # runs (Newman's "aggregate exposing monolith"): whatever the runs flag says, their
    # calls land where the monolith's own calls would.
    routed = Turnout().init_app(app, REGISTRY, settings=settings, engine=engine,
                                extras={SESSIONS: make_sessions(engine), OUTCOMES: outcomes},
                                authorize_admin=auth.admin_actor, serve=("accounts", "runs"),
                                dashboard_viewer=auth.dashboard_viewer,
                                dashboard_login=auth.dashboard_login)
    app.extensions[FEATURES_KEY] = typed(routed)

    csrf = CSRFProtect(app)
    auth.init_app(app, Grants(engine, {SESSION: settings["SESSION_MAX_LIFETIME"],
                                       TOKEN: settings["API_TOKEN_MAX_LIFETIME"]}))
    throttle.init_app(app)  # before any hook reads current_user (basic auth checks a password)
    idempotent_api.init_app(app, outcomes)  # after auth: keys are scoped to the runner
    errors.init_app(app)
    field_names.init_app(app)
    headers.init_app(app)
    html, api = _blueprints()
    for blueprint in api:
        csrf.exempt(blueprint)  # the API authenticates each request; no cookies, no CSRF
        app.register_blueprint(blueprint)
    for blueprint in html:
        app.register_blueprint(blueprint)
    app.add_url_rule("/favicon.ico", "favicon", favicon)
    for blueprint in app.extensions["turnout"].blueprints:
        # JSON from programs and operators; the dashboard's forms carry Turnout's own token
        # (shims/dashboard/csrf.py), so Flask-WTF's is not asked for there either.
        csrf.exempt(blueprint)
    return app
