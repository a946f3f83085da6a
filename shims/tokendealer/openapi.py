"""The token dealer's OpenAPI 3.1 document: what each route accepts and every answer it gives.

Pure (no I/O): the app serves it at `/openapi.json`, and tests/functional/
test_schemathesis_tokendealer.py holds the dealer to it. Which audiences and scopes a client
may ask for is configuration (the clients file), not schema: a well-formed request for an
audience the client has no grant for is refused 400 `unauthorized_client` (RFC 6749 5.2).
"""

from __future__ import annotations

from typing import Any

from shims.openapi import ERROR_SCHEMA
from shims.tokendealer.keys import ALGORITHM

GRANT_TYPE = "client_credentials"
# The RFC 6750 token type, not a password.
TOKEN_TYPE = "Bearer"  # nosec B105
OAUTH_ERRORS = ["invalid_request", "invalid_client", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope", "temporarily_unavailable"]
NO_STORE = {"Cache-Control": {"description": "`no-store`: tokens and refusals are never cached",
                              "schema": {"const": "no-store"}},
            "Pragma": {"description": "`no-cache`, for HTTP/1.0 caches",
                       "schema": {"const": "no-cache"}}}
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_OAUTH_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}


def openapi_document(issuer: str, max_body: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Turnout token dealer", "version": "1.0",
                 "description": "OAuth2 client-credentials grant (RFC 6749 4.4) for "
                                "service-to-service calls. Tokens are RS256 JWTs issued by "
                                f"{issuer!r}; verify them against /.well-known/jwks.json."},
        "paths": {
            "/oauth/token": {"post": _token_operation(max_body)},
            "/.well-known/jwks.json": {"get": _jwks_operation()},
            "/healthz": {"get": _healthz_operation()},
            "/metrics": {"get": _metrics_operation()},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {
                    "application/json": {"schema": {"type": "object"}}}},
                    "405": _method_not_allowed()}}},
        },
        "components": {
            "securitySchemes": {"clientBasic": {
                "type": "http", "scheme": "basic",
                "description": "client id and secret, each form-encoded (RFC 6749 2.3.1)"}},
            "schemas": _schemas(),
        },
    }


def _token_operation(max_body: int) -> dict[str, Any]:
    def oauth_error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"description": description, "headers": {**NO_STORE, **(headers or {})},
                "content": _OAUTH_ERROR}

    return {
        "operationId": "token", "summary": "Issue an access token (RFC 6749 4.4)",
        "description": "The client authenticates by HTTP Basic or by `client_id` and "
                       "`client_secret` in the form, never both (400 invalid_request). "
                       "Unknown parameters are ignored (RFC 6749 3.1); a repeated one is "
                       "refused. `audience` and `scope` must be granted to the client by the "
                       "dealer's clients file: otherwise 400 unauthorized_client or "
                       "invalid_scope.",
        # Basic, or no header and the credentials in the form (which OpenAPI cannot name
        # as a security scheme): either way, no credentials at all is a 401.
        "security": [{"clientBasic": []}, {}],
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {
                "$ref": "#/components/schemas/TokenRequest"}}}},
        "responses": {
            "200": {"description": "the token", "headers": NO_STORE, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Token"}}}},
            "400": oauth_error("invalid_request (not a form body, a parameter repeated or "
                               "missing, two ways of client authentication), "
                               "unsupported_grant_type, unauthorized_client (no grant for "
                               "this audience) or invalid_scope (a scope not granted)"),
            "401": oauth_error("invalid_client: no credentials, an unknown client or a wrong "
                               "secret, one answer for all", {"WWW-Authenticate": {
                                   "schema": {"type": "string", "pattern": "^Basic "}}}),
            "405": _method_not_allowed(),
            "413": {"description": f"the body is over {max_body} bytes",
                    "headers": NO_STORE, "content": _JSON_ERROR},
            "503": oauth_error("temporarily_unavailable: the clients file or the keys "
                               "cannot be read (the dealer logs why)"),
        },
    }


def _jwks_operation() -> dict[str, Any]:
    return {
        "operationId": "jwks", "summary": "The public keys tokens are signed with (RFC 7517)",
        "responses": {
            "200": {"description": "every published key; the first request creates one",
                    "headers": {"Cache-Control": {"schema": {
                        "type": "string", "pattern": "^public, max-age=[0-9]+$"}}},
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/JWKS"}}}},
            "405": _method_not_allowed(),
            "503": {"description": "the keys cannot be read (the dealer logs why)",
                    "content": _JSON_ERROR}}}


def _healthz_operation() -> dict[str, Any]:
    return {
        "operationId": "healthz", "summary": "A signer and a readable clients file",
        "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Health"}}}},
            "403": {"description": "a caller off loopback (unless TURNOUT_OPS_PUBLIC)",
                    "content": _JSON_ERROR},
            "405": _method_not_allowed(),
            "503": {"description": "failing: the keys or the clients file cannot be read",
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Health"}}}}}}


def _metrics_operation() -> dict[str, Any]:
    return {
        "operationId": "metrics", "summary": "Prometheus metrics",
        "responses": {
            "200": {"description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            "403": {"description": "a caller off loopback (unless TURNOUT_OPS_PUBLIC)",
                    "content": _JSON_ERROR},
            "405": _method_not_allowed()}}


def _method_not_allowed() -> dict[str, Any]:
    return {"description": "method not allowed", "headers": {"Allow": {
        "required": True, "description": "the methods this path answers",
        "schema": {"type": "string"}}}, "content": _JSON_ERROR}


def _schemas() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "Error": ERROR_SCHEMA,
        "TokenRequest": {
            # Every parameter once, as text (RFC 6749 3.2: a repeat is invalid_request);
            # unknown ones are ignored (3.1).
            "type": "object", "required": ["grant_type", "audience"],
            "additionalProperties": text,
            "properties": {
                "grant_type": {"enum": [GRANT_TYPE]},
                "audience": {**text, "minLength": 1,
                             "description": "the service the token is for"},
                "scope": {**text, "description": "space-separated; empty or absent: every "
                                                 "scope granted for the audience"},
                "client_id": {**text, "description": "only without HTTP Basic"},
                "client_secret": {**text, "description": "only without HTTP Basic"}}},
        "Token": {
            "type": "object", "additionalProperties": False,
            "required": ["access_token", "token_type", "expires_in", "scope"],
            "properties": {"access_token": {**text, "description": "an RS256 JWT"},
                           "token_type": {"const": TOKEN_TYPE},
                           "expires_in": {"type": "integer", "minimum": 1},
                           "scope": {**text, "description": "the scopes granted, "
                                                            "space-separated"}}},
        "OAuthError": {
            "type": "object", "additionalProperties": False,
            "required": ["error", "error_description"],
            "properties": {"error": {"enum": OAUTH_ERRORS}, "error_description": text}},
        "JWKS": {
            "type": "object", "additionalProperties": False, "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": ["kid", "kty", "alg", "use", "n", "e"],
                "properties": {"kid": text, "kty": {"const": "RSA"},
                               "alg": {"const": ALGORITHM}, "use": {"const": "sig"},
                               "n": text, "e": text}}}}},
        "Health": {
            "type": "object", "required": ["service", "pid", "status"],
            "properties": {"service": {"const": "tokendealer"}, "pid": {"type": "integer"},
                           "status": {"enum": ["ok", "failing"]},
                           "signer": {**text, "description": "the kid that signs now"},
                           "clients": {"type": "integer", "minimum": 0},
                           "reason": text}},
    }
