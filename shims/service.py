"""The service side of a contract: `POST /rpc/<contract>/<method>` for each method.

The body is `{"args": {...}}`; each argument is decoded with the contract's type
hints (bad input is a 400 naming the argument, exactly as the local side
would refuse it), the implementation is called, and the result goes back as
`{"result": ...}`. Contract errors keep their status and code; anything else is
logged and answered 500 without a traceback.

A write's `Idempotency-Key` opens the key scope of the call (shims/idempotency.py): an
implementation wrapped in `Keyed` (shims/outcomes.py) records its outcome under that key
in the write's own transaction and answers a repeat with it; a router passes the key on
with the call it forwards; any other write the call makes gets a key derived from it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from shims import idempotency, json_input
from shims.contract import ContractSpec, MethodSpec
from shims.errors import TurnoutError, ValidationError
from shims.http_cache import GZIP_MIN_BYTES, compress, etag_of, inflate
from shims.remote import RPC_PREFIX
from shims.wire import from_wire, to_wire

log = logging.getLogger("turnout.service")

CallObserver = Callable[[MethodSpec, str, float], None]  # method, outcome, seconds
# Checks the caller may call this method (shims/auth.py: a bearer token with the method's
# scope); raises InvalidToken or InsufficientScope.
Guard = Callable[[MethodSpec], None]


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    body = {"error": code, "message": message}
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


def error_json(error: TurnoutError) -> Response:
    """A raised error as its JSON body (a ValidationError lists every problem in `errors`)."""
    response = jsonify(error.to_dict())
    response.status_code = error.status
    return response


def rpc_blueprint(bindings: Iterable[tuple[ContractSpec, Any]],
                  observe: CallObserver | None = None, guard: Guard | None = None,
                  document: dict[str, Any] | None = None) -> Blueprint:
    """One blueprint serving every (contract, implementation) pair given; `guard` runs
    before anything is decoded, so an unauthenticated caller learns nothing. `document`,
    when given, is served at `/rpc/openapi.json` (public: it describes, it holds nothing)."""
    table = {(spec.name, method.name): (method, implementation)
             for spec, implementation in bindings for method in spec.methods.values()}
    blueprint = Blueprint("rpc", __name__, url_prefix=RPC_PREFIX)
    if document is not None:
        blueprint.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))

    @blueprint.post("/<contract>/<method_name>")
    def dispatch(contract: str, method_name: str):
        entry = table.get((contract, method_name))
        if entry is None:
            return error_response(404, "unknown_method",
                                  f"this service has no method {contract}.{method_name}")
        method, implementation = entry
        started = time.perf_counter()
        outcome = "ok"
        try:
            if guard is not None:
                guard(method)
            arguments = decode_arguments(method, _request_json())
            with _key_scope(method, arguments):
                result = getattr(implementation, method.name)(**arguments)
            return _answer(method, {"result": to_wire(result)})
        except TurnoutError as error:
            outcome = error.code
            return error_json(error)
        except HTTPException as error:  # e.g. a body past the size limit: answered by the app
            outcome = f"http_{error.code}"
            raise
        except Exception:
            outcome = "internal_error"
            raise
        finally:
            if observe is not None:
                observe(method, outcome, time.perf_counter() - started)

    return blueprint


def _key_scope(method: MethodSpec, arguments: dict[str, Any]):
    """The caller's key names this very call (reads take none: they change nothing)."""
    key = None if method.is_read else idempotency.parse(request.headers.get(idempotency.HEADER))
    forwarded = key and idempotency.fingerprint(method, method.bind((), arguments))
    return idempotency.scope(key, forwarded)


def _request_json() -> Any:
    """The body through the kit's one loader (size, depth, text); an inflated gzip body is
    held to the same size limit as a plain one."""
    body = request.get_data(cache=False)
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        body = inflate(body, limit) if limit else inflate(body)
    return json_input.loads(body, expected='a JSON object {"args": {...}}')


def _answer(method: MethodSpec, payload: dict[str, Any]) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    status, headers = 200, {"Content-Type": "application/json"}
    etag = etag_of(body) if method.cacheable else None
    if etag and request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.accept_encodings:
        body = compress(body)
        headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    if not method.cacheable:  # a write's outcome, or a read the contract says not to keep
        headers["Cache-Control"] = "no-store"
    response = Response(body, status=status, headers=headers)
    if etag:
        response.set_etag(etag)
    return response


def decode_arguments(method: MethodSpec, body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("args"), Mapping):
        raise ValidationError('the body must be a JSON object {"args": {...}}')
    raw = body["args"]
    known = {param.name for param in method.params}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValidationError(f"unknown argument(s): {', '.join(unknown)}", field=unknown[0])
    arguments = {}
    for param in method.params:
        if param.name in raw:
            arguments[param.name] = from_wire(param.annotation, raw[param.name], param.name)
        elif param.required:
            raise ValidationError(f"{param.name} is required", field=param.name)
    return arguments


def install_json_errors(app: Flask) -> None:
    """Every error a service answers is JSON, with codes that cannot be mistaken for
    contract errors (an unknown route is `route_not_found`, not the contract's `not_found`)."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        name = (error.name or "error").lower().replace(" ", "_")
        code = "route_not_found" if error.code == 404 else name
        message = error.description or name
        if isinstance(error, RequestEntityTooLarge):
            message = json_input.too_large_message(current_app.config.get("MAX_CONTENT_LENGTH"))
        response = error_response(error.code or 500, code, message)
        # Keep the exception's own headers but its Content-Type: a 405 must say `Allow`.
        response.headers.extend([(header, value) for header, value in error.get_headers()
                                 if header.lower() != "content-type"])
        return response

    @app.errorhandler(TurnoutError)
    def turnout_error(error: TurnoutError):
        return error_json(error)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "something went wrong in the service; "
                                                     "it has been logged")
