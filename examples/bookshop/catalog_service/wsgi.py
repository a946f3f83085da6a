"""gunicorn's entry point for the catalog service ([watcher:catalog])."""

from gevent import monkey

monkey.patch_all()  # first: before anything imports socket, ssl or threading

from catalog_service.app import create_app  # noqa: E402

app = create_app()
