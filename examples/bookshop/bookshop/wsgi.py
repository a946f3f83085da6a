"""gunicorn's entry point for the bookshop."""

from gevent import monkey

monkey.patch_all()  # first: before anything imports socket, ssl or threading

from bookshop import create_app  # noqa: E402

app = create_app()
