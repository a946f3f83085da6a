"""gunicorn entry point for the token dealer (see monolith/wsgi.py for why it patches)."""

from gevent import monkey

monkey.patch_all()

from shims.tokendealer.app import create_app  # noqa: E402
from shims.logs import configure as configure_logging  # noqa: E402

configure_logging()
app = create_app()
