"""Login throttling: failed password attempts, counted per account and per client address.

Flask-Limiter keeps the counters. Its application-wide limits are checked in a
`before_request` hook registered before anything authenticates, so a throttled attempt is
answered 429 (with `Retry-After`) before any password is hashed, and only attempts that
failed (401) are counted: a runner who types their password right is never slowed, while a
guesser gets a handful of tries per account and per address, and then the right password
too is refused until the window passes.

Counted: POST /login, POST /api/tokens with a password (JSON or basic auth; renewing with
a bearer token is not a password attempt), and basic auth on any other API request.
Sign-ups answered 409 (the email is taken: the one thing sign-up cannot hide) are counted
per address, so the answer cannot be harvested in bulk.

Storage (RATELIMIT_STORAGE_URI): Redis by default, shared by every worker and host. If it
cannot be reached, each process falls back to counting in its own memory (logged), so the
limits still hold per worker: multiplied by the number of workers, never switched off.
"memory://" is right only where one process serves (tests, a single dev server).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from flask import Flask, Response, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address

from monolith.auth import is_api_path

PASSWORD_ENDPOINTS = frozenset({"accounts_html.login", "accounts_api.create_token"})
SIGNUP_ENDPOINTS = frozenset({"accounts_html.signup", "accounts_api.sign_up"})

DEFAULTS: dict[str, Any] = {
    "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
    "RATELIMIT_KEY_PREFIX": "runnerly",  # several apps (or test stacks) may share one Redis
    # Failed logins: per account (the email tried), per client address, and sign-ups that
    # found the email taken, per address. Flask-Limiter's notation; ";" joins limits.
    "LOGIN_LIMIT_PER_ACCOUNT": "10 per minute;30 per hour",
    "LOGIN_LIMIT_PER_ADDRESS": "30 per minute;200 per hour",
    "SIGNUP_TAKEN_LIMIT_PER_ADDRESS": "10 per minute;50 per hour",
}


def init_app(app: Flask) -> Limiter:
    """Register after authentication's hooks are set up and before any hook that reads
    `current_user` (which would check a basic-auth password)."""
    config = app.config
    limits = [
        ApplicationLimit(limit_provider=config["LOGIN_LIMIT_PER_ACCOUNT"],
                         key_function=attempted_account, scope="login-account",
                         exempt_when=lambda: not attempted_account(),
                         deduct_when=_failed_login,
                         error_message=_message("failed logins for this email",
                                                config["LOGIN_LIMIT_PER_ACCOUNT"])),
        ApplicationLimit(limit_provider=config["LOGIN_LIMIT_PER_ADDRESS"],
                         key_function=get_remote_address, scope="login-address",
                         exempt_when=lambda: not password_sent(), deduct_when=_failed_login,
                         error_message=_message("failed logins from your address",
                                                config["LOGIN_LIMIT_PER_ADDRESS"])),
        ApplicationLimit(limit_provider=config["SIGNUP_TAKEN_LIMIT_PER_ADDRESS"],
                         key_function=get_remote_address, scope="signup-taken",
                         exempt_when=lambda: not _signing_up(), deduct_when=_email_taken,
                         error_message=_message("sign-ups with a taken email from your "
                                                "address",
                                                config["SIGNUP_TAKEN_LIMIT_PER_ADDRESS"])),
    ]
    uri = config["RATELIMIT_STORAGE_URI"]
    return Limiter(get_remote_address, app=app, application_limits=limits, storage_uri=uri,
                   storage_options=_storage_options(uri),
                   key_prefix=config["RATELIMIT_KEY_PREFIX"], strategy="moving-window",
                   headers_enabled=True, in_memory_fallback_enabled=True)


def _storage_options(uri: str) -> dict[str, Any]:
    # A Redis that stops answering must cost a login a second, not a hung worker: the
    # fallback to memory needs the call to fail first.
    if uri.startswith(("redis://", "rediss://", "redis+")):
        return {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
    return {}


def _message(what: str, limit: str) -> str:
    return f"too many {what} (at most {limit.replace(';', ', ')}); try again after Retry-After"


def _failed_login(response: Response) -> bool:
    return response.status_code == 401


def _email_taken(response: Response) -> bool:
    return response.status_code == 409


def _signing_up() -> bool:
    return request.method == "POST" and request.endpoint in SIGNUP_ENDPOINTS


def password_sent() -> bool:
    """Does this request try a password?"""
    scheme = _authorization_scheme()
    if request.method == "POST" and request.endpoint in PASSWORD_ENDPOINTS:
        return scheme != "bearer"  # a token renewing itself is not a guess
    return scheme == "basic" and is_api_path(request.path)


def attempted_account() -> str:
    """The email a password is tried for, as a digest (the counters' keys should not list
    emails), or "" when the request tries none."""
    if not password_sent():
        return ""
    email = _basic_email() if _authorization_scheme() == "basic" else _body_email()
    if not email:
        return ""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]


def _authorization_scheme() -> str:
    return request.headers.get("Authorization", "").partition(" ")[0].lower()


def _basic_email() -> str:
    encoded = request.headers.get("Authorization", "").partition(" ")[2].strip()
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""  # refused as malformed later; the address limit still counts it
    return decoded.partition(":")[0]


def _body_email() -> str:
    if request.endpoint == "accounts_api.create_token":  # read as json_body reads it
        try:
            data = json.loads(request.get_data(cache=True))
        except (ValueError, RecursionError):
            return ""
        email = data.get("email") if isinstance(data, dict) else None
    else:
        email = request.form.get("email")
    return email if isinstance(email, str) else ""
