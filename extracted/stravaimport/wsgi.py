"""gunicorn entry point for the Strava importer (see monolith/wsgi.py for why it patches)."""

from gevent import monkey

monkey.patch_all()

from extracted.stravaimport.app import create_app  # noqa: E402
from shims.logs import configure as configure_logging  # noqa: E402
from shims.telemetry import configure as configure_tracing  # noqa: E402

configure_logging()
configure_tracing("stravaimport")  # here, in the worker: after gunicorn's fork (shims/telemetry.py)
app = create_app()
