"""One error handler for the whole app: JSON under /api/, a page elsewhere.

Contract errors carry their status; Werkzeug's HTTP errors (unknown route,
wrong method, body too large, CSRF failure) keep theirs. Anything else is a bug:
it is logged with its traceback and the client gets a plain 500 without one.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from monolith.field_names import messages_for_people
from monolith.web import json_response
from shims import json_input
from shims.errors import TurnoutError

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/_turnout/", "/rpc/")) \
        or request.path in ("/api", "/healthz")


def init_app(app: Flask) -> None:
    app.register_error_handler(TurnoutError, _turnout_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _render(status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None):
    return _answer(status, {"error": code, "message": message}, headers)


def _answer(status: int, body: dict, headers: list[tuple[str, str]] | None = None,
            error: TurnoutError | None = None):
    """`body` as JSON for the API; a page for a browser, naming fields as people do."""
    if wants_json():
        response = json_response(body, status)
    else:
        messages = messages_for_people(error) or [body["message"]]
        response = make_response(render_template("error.html", status=status,
                                                 messages=messages), status)
    response.headers.extend(headers or [])
    return response


def _turnout_error(error: TurnoutError):
    retry_after = getattr(error, "retry_after", None)  # a service is down: say when to retry
    headers = [("Retry-After", str(retry_after))] if retry_after else None
    return _answer(error.status, error.to_dict(), headers, error)


def _csrf_error(error: CSRFError):
    return _render(400, "csrf", f"the form has expired or was not sent by this site "
                                f"({error.description}); reload the page and try again")


def _http_error(error: HTTPException):
    code = (error.name or "error").lower().replace(" ", "_")
    # Keep the exception's own headers except its Content-Type: a 405 must say `Allow`.
    headers = [(name, value) for name, value in error.get_headers()
               if name.lower() != "content-type"]
    message = error.description or error.name
    if isinstance(error, RequestEntityTooLarge):
        message = json_input.too_large_message(current_app.config.get("MAX_CONTENT_LENGTH"))
    return _render(error.code or 500, code, message, headers=headers)


def _unexpected_error(error: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _render(500, "internal_error", "something went wrong on our side; it has been logged")
