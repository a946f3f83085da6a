"""The token dealer's app factory: `POST /oauth/token`, `GET /.well-known/jwks.json`.

Errors of the token endpoint follow RFC 6749 section 5.2, checked in this order:
  400 invalid_request         not a form body, a parameter repeated, grant_type or
                              audience missing, or two ways of client authentication
  400 unsupported_grant_type  anything but client_credentials
  401 invalid_client          no credentials, unknown client or wrong secret: one answer
                              for all (with `WWW-Authenticate: Basic`), so ids cannot be
                              enumerated
  400 unauthorized_client     the client has no grant at all for the audience asked
  400 invalid_scope           a scope asked that the client is not granted for it
  503 temporarily_unavailable the clients file or the keys cannot be read (logged)
Every answer of the token endpoint carries `Cache-Control: no-store`, its 405 (with `Allow`)
and 413 (a body over MAX_CONTENT_LENGTH) too. `GET /openapi.json` describes all of it
(shims/tokendealer/openapi.py).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import jwt
from flask import Flask, Response, jsonify, request
from prometheus_client import Counter

from shims.tokendealer.clients import ClientRegistry
from shims.tokendealer.keys import ALGORITHM, KeyRing
from shims.tokendealer.openapi import GRANT_TYPE, TOKEN_TYPE, openapi_document
from shims import traced_requests
from shims.ops import loopback_only
from shims.metrics import TurnoutMetrics, metrics_blueprint
from shims.service import error_response, install_json_errors
from shims.settings import ConfigError, load_settings

SERVICE = "tokendealer"
# A route, not a password.
TOKEN_PATH = "/oauth/token"  # nosec B105
DEFAULTS: dict[str, Any] = {
    "RUN_DIR": "run",
    "TOKENDEALER_KEYS_DIR": None,  # None: RUN_DIR/keys
    "TOKENDEALER_CLIENTS_FILE": None,  # None: RUN_DIR/clients.json
    # The `iss` claim of every token: a name, not a secret.
    "TOKEN_ISSUER": "turnout-tokendealer",  # nosec B105
    # A lifetime in seconds, not a secret.
    "TOKEN_LIFETIME": 300,  # nosec B105
    "JWKS_MAX_AGE": 60,  # seconds a JWKS answer may be cached by HTTP caches
    "MAX_CONTENT_LENGTH": 16 * 1024,
}
log = logging.getLogger("turnout.tokendealer")


class TokenRequestError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def load_config(override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    config = load_settings(DEFAULTS, override)
    run_dir = Path(config["RUN_DIR"])
    config["TOKENDEALER_KEYS_DIR"] = str(config["TOKENDEALER_KEYS_DIR"] or run_dir / "keys")
    config["TOKENDEALER_CLIENTS_FILE"] = str(config["TOKENDEALER_CLIENTS_FILE"]
                                             or run_dir / "clients.json")
    if config["TOKEN_LIFETIME"] <= 0:
        raise ConfigError("TURNOUT_TOKEN_LIFETIME must be a positive number of seconds")
    return config


def create_app(config: Mapping[str, Any] | None = None, *,
               clock: Callable[[], float] = time.time) -> Flask:
    """No key is made or read here: the first token or JWKS request does it."""
    settings = load_config(config)
    app = Flask(__name__)
    app.config.update(settings)
    traced_requests.install(app)  # a token fetch continues its caller's trace
    keyring = KeyRing(settings["TOKENDEALER_KEYS_DIR"])
    registry = ClientRegistry(settings["TOKENDEALER_CLIENTS_FILE"])
    metrics = TurnoutMetrics()
    tokens = Counter("turnout_tokendealer_tokens", "Token requests by client and outcome "
                     "(issued, or the OAuth error code)", ["client", "outcome"],
                     registry=metrics.registry)
    issuer, lifetime = settings["TOKEN_ISSUER"], settings["TOKEN_LIFETIME"]

    @app.post(TOKEN_PATH)
    def token():
        client_label = "unknown"
        try:
            form = _token_form()
            client = registry.authenticate(*_client_credentials(form))
            if client is None:
                raise TokenRequestError(401, "invalid_client", "client authentication failed")
            client_label = client.client_id
            audience = form["audience"]
            granted = client.grants.get(audience)
            if granted is None:
                raise TokenRequestError(400, "unauthorized_client",
                                        f"this client may not have tokens for {audience!r}")
            asked = set(form.get("scope", "").split()) or set(granted)
            refused = sorted(asked - granted)
            if refused:
                raise TokenRequestError(400, "invalid_scope", f"not granted for {audience!r}: "
                                        f"{' '.join(refused)}")
            signer = keyring.signer()
        except TokenRequestError as refusal:
            tokens.labels(client_label, refusal.error).inc()
            log.info("token refused (%s) to %s: %s", refusal.error, client_label,
                     refusal.description)
            return _oauth_error(refusal)
        except ConfigError:
            tokens.labels(client_label, "temporarily_unavailable").inc()
            log.exception("the token dealer cannot use its clients file or keys")
            return _oauth_error(TokenRequestError(503, "temporarily_unavailable",
                                                  "the dealer cannot issue tokens now; "
                                                  "see its log"))
        now = int(clock())
        scope = " ".join(sorted(asked))
        claims = {"iss": issuer, "sub": client.client_id, "aud": audience, "iat": now,
                  "nbf": now, "exp": now + lifetime, "jti": str(uuid.uuid4()), "scope": scope}
        access_token = jwt.encode(claims, signer.private_key, algorithm=ALGORITHM,
                                  headers={"kid": signer.kid})
        tokens.labels(client_label, "issued").inc()
        body = {"access_token": access_token, "token_type": TOKEN_TYPE,
                "expires_in": lifetime, "scope": scope}
        return _no_store(jsonify(body))

    @app.get("/.well-known/jwks.json")
    def jwks():
        try:
            response = jsonify(keyring.jwks())
        except ConfigError:
            log.exception("the token dealer cannot read its keys")
            return error_response(503, "temporarily_unavailable", "the dealer cannot "
                                  "publish its keys now; see its log")
        response.headers["Cache-Control"] = f"public, max-age={settings['JWKS_MAX_AGE']}"
        return response

    @app.get("/healthz")
    def healthz():
        body: dict[str, Any] = {"service": SERVICE, "pid": os.getpid()}
        try:
            body["signer"] = keyring.signer().kid
            body["clients"] = len(registry.clients())
        except ConfigError as exc:
            response = jsonify({**body, "status": "failing", "reason": str(exc)})
            response.status_code = 503
            return response
        return jsonify({**body, "status": "ok"})

    document = openapi_document(issuer, settings["MAX_CONTENT_LENGTH"])
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))

    @app.after_request
    def token_answers_are_never_stored(response: Response) -> Response:
        # Every answer of the token endpoint, the 405 and 413 of the error handlers too.
        return _no_store(response) if request.path == TOKEN_PATH else response
    app.register_blueprint(metrics_blueprint(metrics))
    install_json_errors(app)
    app.extensions["turnout_keyring"] = keyring
    app.extensions["turnout_clients"] = registry
    loopback_only(app)
    return app


def _token_form() -> dict[str, str]:
    if request.mimetype != "application/x-www-form-urlencoded":
        raise TokenRequestError(400, "invalid_request", "the body must be "
                                "application/x-www-form-urlencoded")
    form = request.form
    repeated = sorted(key for key in form if len(form.getlist(key)) > 1)
    if repeated:
        raise TokenRequestError(400, "invalid_request",
                                f"parameters may not repeat: {', '.join(repeated)}")
    values = form.to_dict()
    grant_type = values.get("grant_type")
    if not grant_type:
        raise TokenRequestError(400, "invalid_request", "grant_type is required")
    if grant_type != GRANT_TYPE:
        raise TokenRequestError(400, "unsupported_grant_type",
                                f"only {GRANT_TYPE} is supported")
    if not values.get("audience"):
        raise TokenRequestError(400, "invalid_request", "audience is required: the service "
                                "the token is for")
    return values


def _client_credentials(form: dict[str, str]) -> tuple[str, str]:
    """(client_id, secret) from HTTP Basic (RFC 6749 2.3.1: form-encoded inside) or from
    the form; using both at once is an invalid_request."""
    header = request.headers.get("Authorization", "")
    in_form = "client_id" in form or "client_secret" in form
    if header:
        if in_form:
            raise TokenRequestError(400, "invalid_request", "authenticate the client one "
                                    "way only: HTTP Basic or the form, not both")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise TokenRequestError(401, "invalid_client", "client authentication failed")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TokenRequestError(401, "invalid_client",
                                    "client authentication failed") from None
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise TokenRequestError(401, "invalid_client", "client authentication failed")
        return unquote_plus(client_id), unquote_plus(secret)
    if in_form:
        return form.get("client_id", ""), form.get("client_secret", "")
    raise TokenRequestError(401, "invalid_client", "client authentication failed")


def _oauth_error(refusal: TokenRequestError) -> Response:
    response = jsonify({"error": refusal.error, "error_description": refusal.description})
    response.status_code = refusal.status
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="turnout-tokendealer"'
    return _no_store(response)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response

