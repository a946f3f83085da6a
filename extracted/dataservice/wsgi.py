"""gunicorn entry point for the data service (see monolith/wsgi.py for why it patches)."""

from gevent import monkey

monkey.patch_all()

from extracted.dataservice.app import create_app  # noqa: E402

app = create_app()
