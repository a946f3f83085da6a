"""gunicorn entry point for the Strava development server."""

from gevent import monkey

monkey.patch_all()

from stravadev.app import create_app  # noqa: E402

app = create_app()
