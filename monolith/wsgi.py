"""gunicorn entry point for the monolith.

gunicorn's gevent worker patches before it loads this module; patching here
again is a no-op then, and makes any other server that imports this module
safe too, since nothing below may import socket, ssl or threading unpatched.
"""

from gevent import monkey

monkey.patch_all()

from monolith.app import create_app  # noqa: E402
from shims.extension import EXTENSION_KEY  # noqa: E402
from shims.logs import configure as configure_logging  # noqa: E402
from shims.telemetry import configure as configure_tracing  # noqa: E402

configure_logging()
configure_tracing("monolith")  # here, in the worker: after gunicorn's fork (shims/telemetry.py)
app = create_app()
app.extensions[EXTENSION_KEY].start_appliers()  # serving workers drain the outbox
