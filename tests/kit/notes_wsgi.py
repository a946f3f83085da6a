"""The gunicorn entry point of tests/kit/test_gunicorn_hooks.py: an app of its own with the
kit's health and metrics endpoints (gunicorn's gevent worker patches before importing it)."""

from flask import Flask

from shims.health import health_blueprint
from shims.metrics import TurnoutMetrics, metrics_blueprint

app = Flask("notes")
app.register_blueprint(health_blueprint("notes"))
app.register_blueprint(metrics_blueprint(TurnoutMetrics()))
