"""gunicorn's entry point for the catalog service ([watcher:catalog])."""

from gevent import monkey

monkey.patch_all()  # first: before anything imports socket, ssl or threading

from catalog_service.app import create_app  # noqa: E402
from shims.logs import configure as configure_logging  # noqa: E402
from shims.telemetry import configure as configure_tracing  # noqa: E402

configure_logging()  # JSON log lines with trace ids
configure_tracing("catalog")  # spans exported when OTEL_TRACES_EXPORTER says so
app = create_app()
