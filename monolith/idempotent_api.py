"""`Idempotency-Key` on the JSON API: a repeated POST/PUT/PATCH/DELETE gets the first answer.

A client that sends a write with a key and hears nothing, or a 503, sends it again with
the same key, and it is applied once. Two layers make that true:

1. Here, the response: keys are scoped to the authenticated runner (or, for sign-up and
   token requests, to the client's address), so one runner's key never meets another's.
   A repeat answers the first response (status, body, Content-Type; with
   `Idempotent-Replayed: true` and `Cache-Control: no-store`) without running the view;
   the same key on another request (method, path, query or JSON body) is refused with 422
   naming the header. Responses
   below 500, but a 401, are kept (shims/outcomes.py, `IDEMPOTENCY_TTL`).
2. Beneath, each write the view makes: the request's key scope (shims/idempotency.py)
   gives every contract write a key derived from the client's. A local write commits its
   rows together with its outcome under that key, and a remote one carries it to the
   service, which does the same. So if the process dies after a write and before (1) kept
   the response, the client's retry runs the view again and every write answers its first
   outcome: the same run id, no second row.

The response is kept after the view, in its own transaction, not in the writes' one: a
view's remote calls and mirrored writes must not run inside an open local transaction
(SQLite would hold its write lock across the network, and the mirror reads committed
rows). Layer 2 is what makes a crash between them harmless.

A 503 is not kept (the client should try again), but it must stay true for the key, not
just for the attempt: once an attempt ended `outcome_unknown`, a later attempt with the
same key that was refused unsent ("not applied") is answered `outcome_unknown` too,
since the earlier one may have been applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextvars import Token
from dataclasses import dataclass

from flask import Flask, Response, g, jsonify, request
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from monolith.auth import is_api_path
from shims import idempotency
from shims.outcomes import Outcome, OutcomeStore

log = logging.getLogger(__name__)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REPLAYED = "Idempotent-Replayed"


@dataclass(frozen=True)
class _Opened:
    scoped: str  # the client's key in its owner's namespace
    asked: str  # the request's fingerprint
    token: Token  # the key scope, closed after the request
    earlier_unknown: bool  # an earlier attempt with this key ended outcome_unknown


def init_app(app: Flask, store: OutcomeStore) -> None:
    """Register after authentication, whose hooks must have run first."""

    def replay_or_open_scope() -> Response | None:
        if request.method not in WRITES or not is_api_path(request.path):
            return None
        if request.routing_exception is not None:
            return None  # no such route or method: its 404/405 must not be replaced by a 422
        key = idempotency.parse(request.headers.get(idempotency.HEADER))
        if key is None:
            return None
        scoped, asked = idempotency.scoped(_owner(), key), _fingerprint()
        kept = store.lookup(scoped, asked)  # both lookups refuse another request: 422
        if kept is not None:
            return _replay(kept)
        unknown = store.lookup(_unknown_marker(scoped), asked)
        g.turnout_api_key = _Opened(scoped, asked, idempotency.enter(scoped),
                                    unknown is not None)
        return None

    def keep(response: Response) -> Response:
        opened = g.get("turnout_api_key")
        if opened is None:
            return response
        try:
            if response.status_code < 500 and response.status_code != 401:
                store.record(opened.scoped, opened.asked, _outcome(response))
            elif response.status_code == 503:
                response = _unknown_stays_unknown(store, opened, response)
        except SQLAlchemyError:  # the writes beneath are keyed: a retry still dedups
            log.warning("keeping the response of %s %s failed", request.method,
                        request.path, exc_info=True)
        return response

    def close_scope(_error: BaseException | None) -> None:
        opened = g.pop("turnout_api_key", None)
        if opened is not None:
            idempotency.leave(opened.token)

    app.before_request(replay_or_open_scope)
    app.after_request(keep)
    app.teardown_request(close_scope)


def _unknown_stays_unknown(store: OutcomeStore, opened: _Opened,
                           response: Response) -> Response:
    """Remembers that this key's outcome became unknown (which also ties the key to this
    request); answers a later "not applied" for the key as unknown, because the earlier
    attempt may have been applied."""
    body = response.get_json(silent=True) or {}
    if body.get("error") == "outcome_unknown":
        store.record(_unknown_marker(opened.scoped), opened.asked, _outcome(response))
        return response
    if body.get("error") != "unavailable" or not opened.earlier_unknown:
        return response
    unknown = jsonify({"error": "outcome_unknown", "message": (
        f"{body.get('message', 'the service is unavailable')}; but an earlier attempt with "
        f"this {idempotency.HEADER} may have been applied: its outcome is unknown, and "
        "retrying with the same key is safe")})
    unknown.status_code = 503
    if "Retry-After" in response.headers:
        unknown.headers["Retry-After"] = response.headers["Retry-After"]
    return unknown


def _unknown_marker(scoped: str) -> str:
    return idempotency.scoped("outcome-unknown", scoped)


def _owner() -> str:
    """Whose keys these are: the runner, or the client's address before it has an account."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"client:{request.remote_addr}"


def _fingerprint() -> str:
    """The request the key was first used for: method, path, query and body (JSON
    compared by value, so a retry that orders its fields differently is the same)."""
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        body = raw
    parts = (request.method, request.path, request.query_string.decode("latin-1"))
    digest = hashlib.sha256("\x00".join(parts).encode() + b"\x00" + body)
    return digest.hexdigest()


def _outcome(response: Response) -> Outcome:
    return Outcome(response.status_code, response.get_data(as_text=True),
                   response.headers.get("Content-Type"))


def _replay(kept: Outcome) -> Response:
    response = Response(kept.body or None, status=kept.status)
    if kept.content_type:
        response.headers["Content-Type"] = kept.content_type
    else:
        del response.headers["Content-Type"]  # a 204 has none
    response.headers[REPLAYED] = "true"
    # Only status, body and Content-Type are kept, so the first answer's caching headers
    # are gone; a write's answer is never to be cached, and a replayed token answer holds
    # a credential (RFC 6749 5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
