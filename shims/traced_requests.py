"""Each request a Turnout app serves: a SERVER span, and one `request_served` log line.

`install(app)` wraps the app's WSGI callable, so the span covers every hook and error
handler of the app. The span continues the caller's trace when its `traceparent` says so
(a Turnout transport always does) and starts one otherwise; it is current while the app
runs, so every span, remote call and log line of the request belongs to it. Its name is
`<METHOD> <route>` once Flask has matched the route (`GET /api/runs/<int:run_id>`), never
the raw path: ids would make every name unique.

The log line (logger `turnout.requests`, INFO) carries the method, the path without its
query string (which may hold a token or an e-mail address), the status and the duration,
and, like every line inside a trace, its trace and span ids. The ops endpoints that probes
poll (`/healthz`, `/metrics`) get neither a span nor a line: a probe every few seconds
would bury the traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shims import telemetry
from shims.logs import event

log = logging.getLogger("turnout.requests")
UNTRACED_PATHS = frozenset({"/healthz", "/metrics"})
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class TracedRequests:
    """WSGI middleware: the span and the log line of each request (module docstring)."""

    def __init__(self, app: WsgiApp):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        path = environ.get("PATH_INFO", "")
        if path in UNTRACED_PATHS:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        caller = telemetry.incoming_context(environ)
        span = telemetry.start_span(method, SpanKind.SERVER, context=caller,
                                    attributes={"http.request.method": method, "url.path": path})
        statuses: list[int] = []

        def recording_start_response(status: str, headers: list, exc_info: Any = None):
            statuses.append(int(status[:3]))
            return start_response(status, headers, exc_info)

        started = time.perf_counter()
        with telemetry.current_span(span):
            try:
                return self.app(environ, recording_start_response)
            except BaseException as error:  # a server error the app did not answer itself
                telemetry.failed(span, error)
                raise
            finally:
                _answered(span, method, path, statuses, time.perf_counter() - started)


def _answered(span: trace.Span, method: str, path: str, statuses: list[int],
              seconds: float) -> None:
    status = statuses[-1] if statuses else 500
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    event(log, "request_served", method=method, path=path, status=status,
          duration_ms=round(seconds * 1000, 1))


def install(app: Flask) -> None:
    """Traces every request of `app` (call it before the app registers its own hooks, so
    that the route is named before any of them can refuse the request)."""
    app.wsgi_app = TracedRequests(app.wsgi_app)  # type: ignore[method-assign]
    app.before_request(_name_after_route)


def _name_after_route() -> None:
    rule = request.url_rule
    if rule is not None:
        span = trace.get_current_span()
        span.update_name(f"{request.method} {rule.rule}")
        span.set_attribute("http.route", rule.rule)
