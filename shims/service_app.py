"""The skeleton every extracted service shares: its contracts on `/rpc` behind dealer
tokens, `/openapi.json` generated from the same specs, `/healthz`, `/metrics` for all its
workers, JSON errors, the ops endpoints kept to loopback callers, a span and a JSON log
line per request that continue the caller's trace (shims/traced_requests.py), and one
deadline per request (`REQUEST_DEADLINE`, or the caller's `X-Turnout-Deadline-Ms` if
sooner) that bounds its own calls to other services."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, jsonify
from sqlalchemy.engine import Engine

from shims import deadline, json_input, traced_requests
from shims.auth import verifying_guard
from shims.contract import ContractSpec
from shims.health import health_blueprint
from shims.metrics import TurnoutMetrics, metrics_blueprint
from shims.openapi import openapi_document
from shims.ops import loopback_only
from shims.service import Guard, install_json_errors, rpc_blueprint


def service_app(name: str, settings: Mapping[str, Any],
                bindings: Iterable[tuple[ContractSpec, Any]], *, title: str, description: str,
                guard: Guard | None = None, engine: Engine | None = None,
                health_details: Callable[[], dict[str, Any]] | None = None,
                setup: Callable[[Flask], None] | None = None) -> Flask:
    """A Flask app serving `bindings`; callers need a dealer token for audience `name`
    unless `SERVICE_TOKENS` is off (`guard` replaces that check only for tests that bring
    their own). `setup(app)` brings up what the implementations need on this app (a team's
    `db.init_app(app)`, say) before any route is added."""
    bindings = list(bindings)
    app = Flask(name)
    app.config.update(settings)
    traced_requests.install(app)  # first: the span covers every later hook
    json_input.ensure_body_limit(app)
    if setup is not None:
        setup(app)
    deadline.install(app, settings["REQUEST_DEADLINE"])
    metrics = TurnoutMetrics()
    document = openapi_document(title, "1.0", [spec for spec, _ in bindings], description)
    app.register_blueprint(rpc_blueprint(bindings, observe=metrics.observe_served,
                                         guard=guard or _token_guard(settings, name)))
    app.register_blueprint(health_blueprint(name, engine, health_details))
    app.register_blueprint(metrics_blueprint(metrics))
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))
    install_json_errors(app)
    loopback_only(app)
    return app


def _token_guard(settings: Mapping[str, Any], name: str) -> Guard | None:
    """Dealer tokens, unless the team has not turned them on yet (docs/adopting.md)."""
    return verifying_guard(settings, name) if settings.get("SERVICE_TOKENS", True) else None
