"""Who is asking: session login for HTML, bearer tokens or basic auth for the JSON API.

Flask-Login keeps the browser session. API tokens are signed with the app's
secret (itsdangerous, shipped with Flask) and expire; they carry the user id. Both a
session and a token also carry a grant id (accounts/grants.py): the login stands only
while its grant does, so logout, "log out everywhere" and deleting the account end it
on the server, and a renewed token keeps its grant's absolute expiry.

A token's signature and live grant prove who is asking, so an API request fetches the
runner's record only when it needs it (an admin check, a profile): with the accounts
feature remote, an API read would otherwise cost a second call to the service per
request (issue 12, B10). A session still loads the record: its pages show it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, current_app, g, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from monolith.accounts.grants import SESSION, TOKEN, Grants, LiveGrant
from monolith.wiring import features
from contracts.accounts import UserRecord
from shims.dashboard import Viewer, is_dashboard_path
from shims.errors import Forbidden, NotFound, Unauthorized

# A namespace for signatures, not a key.
TOKEN_SALT = "runnerly-api-token"  # nosec B105
GRANTS_KEY = "runnerly_grants"  # app.extensions
SESSION_GRANT = "_grant"  # the browser session's key holding its grant id


class LoggedInUser(UserMixin):
    """Flask-Login's view of a runner: its id, and its UserRecord, given or fetched when
    first asked for (a token's runner deleted since is then a 401, like a revoked token)."""

    def __init__(self, user_id: int, record: UserRecord | None = None):
        self._id = user_id
        self._record = record

    @classmethod
    def of(cls, record: UserRecord) -> LoggedInUser:
        return cls(record.id, record)

    @property
    def record(self) -> UserRecord:
        if self._record is None:
            try:
                self._record = features().accounts.get_user(self._id)
            except NotFound:
                raise Unauthorized("the API token belongs to a deleted account") from None
        return self._record

    def get_id(self) -> str:
        return str(self._id)

    @property
    def id(self) -> int:
        return self._id

    @property
    def is_admin(self) -> bool:
        return self.record.is_admin


def is_api_path(path: str) -> bool:
    """The JSON APIs, authenticated by the Authorization header only (never a cookie).
    Turnout's dashboard, under /_turnout/ too, is HTML for the browser session."""
    if is_dashboard_path(path):
        return False
    return path in ("/api", "/_turnout") or path.startswith(("/api/", "/_turnout/"))


class _LoginManager(LoginManager):
    """Flask-Login, except that API requests are authenticated by their header alone.

    The API blueprints are exempt from CSRF, so a browser's session or remember-me cookie
    must never authenticate them: a hostile page could otherwise post to /api/ as the
    logged-in runner. (Flask-Login 0.6 also skips the request loader whenever a remember
    cookie is present, which would ignore a valid bearer token.)
    """

    def _load_user(self) -> Any:
        if is_api_path(request.path):
            return self._update_request_context_with_user(_load_api_user(request))
        return super()._load_user()


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, `Secure` whenever the request came over TLS (or
    SESSION_COOKIE_SECURE says the site is always served so, behind a TLS proxy)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(super().get_cookie_secure(app) or request.is_secure)


def init_app(app: Flask, grants: Grants) -> None:
    app.extensions[GRANTS_KEY] = grants
    app.session_interface = _SessionCookies()
    manager = _LoginManager()
    manager.login_view = "accounts_html.login"
    manager.login_message = "Log in to see that page."
    manager.session_protection = "basic"
    manager.user_loader(_load_session_user)
    manager.init_app(app)
    app.before_request(_forget_previous_user)


def _forget_previous_user() -> None:
    # Flask-Login caches the user in `g`, which lives as long as the app context. A caller
    # holding one app context across requests (tests, scripts) would otherwise see one
    # request's credentials answer for the next; identity is strictly per request.
    g.pop("_login_user", None)
    g.pop("runnerly_token_grant", None)


def _grants() -> Grants:
    return current_app.extensions[GRANTS_KEY]


def log_in(user: UserRecord) -> None:
    """A browser session for `user`, on a grant of its own that logout can end (a login
    this browser held before ends: a copy of the old cookie must not outlive it)."""
    _end_session_grant()
    login_user(LoggedInUser.of(user))
    session[SESSION_GRANT] = _grants().open(user.id, SESSION).id


def log_out() -> None:
    """Ends this browser session on the server too: a copy of its cookie no longer works."""
    _end_session_grant()
    logout_user()


def _end_session_grant() -> None:
    grant_id = session.pop(SESSION_GRANT, None)
    if isinstance(grant_id, str):
        _grants().end(grant_id)


def log_out_everywhere(user_id: int) -> int:
    """Every browser session and API token of the runner; how many were ended."""
    session.pop(SESSION_GRANT, None)
    return _grants().end_all(user_id)


def end_logins_of_deleted(user_id: int) -> None:
    """After an admin deleted the account: its sessions and tokens end with it (an API
    request does not fetch the runner's record, so the grant is what refuses them)."""
    _grants().end_all(user_id)


def current_token_grant() -> LiveGrant | None:
    """The grant of the bearer token this API request came with (None for basic auth)."""
    return g.get("runnerly_token_grant")


def issue_token(user_id: int, *, renewal: bool = False) -> tuple[str, int]:
    """A bearer token and its lifetime in seconds. A renewal passes the presented token's
    grant on (it never outlives the first login); otherwise a new login begins."""
    grant = current_token_grant() if renewal else None
    if grant is None or grant.user_id != user_id:
        grant = _grants().open(user_id, TOKEN)
    token = _serializer().dumps({"uid": user_id, "gid": grant.id})
    return token, min(current_app.config["API_TOKEN_MAX_AGE"], grant.seconds_left())


def revoke_current_token() -> bool:
    grant = current_token_grant()
    if grant is None:
        return False
    _grants().end(grant.id)
    return True


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=TOKEN_SALT)


def _load_session_user(user_id: str) -> LoggedInUser | None:
    try:
        uid = int(user_id)
        if _grants().live(session.get(SESSION_GRANT), uid) is None:
            return None  # logged out (here or everywhere), expired, or from before grants
        return LoggedInUser.of(features().accounts.get_user(uid))
    except (NotFound, ValueError):
        return None  # the account was deleted: the session simply ends


def _load_api_user(req: Any) -> LoggedInUser | None:
    """The Authorization header of an API request; HTML pages use the session instead."""
    header = req.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        return LoggedInUser(_user_id_for_token(credentials.strip()))
    if scheme.lower() == "basic":
        email, password = _basic_credentials(credentials.strip())
        return LoggedInUser.of(features().accounts.authenticate(email, password))
    raise Unauthorized("Authorization must be 'Bearer <token>' or 'Basic <credentials>'")


def _user_id_for_token(token: str) -> int:
    try:
        payload = _serializer().loads(token, max_age=current_app.config["API_TOKEN_MAX_AGE"])
        user_id, grant_id = int(payload["uid"]), payload["gid"]
    except SignatureExpired:
        raise Unauthorized("the API token has expired; ask POST /api/tokens for a new one") \
            from None
    except (BadSignature, KeyError, TypeError, ValueError):
        raise Unauthorized("the API token is not valid") from None
    grant = _grants().live(grant_id, user_id)
    if grant is None:
        raise Unauthorized("the API token was revoked or its login has reached its maximum "
                           "lifetime; log in again (POST /api/tokens with your password)")
    g.runnerly_token_grant = grant
    return user_id


def _basic_credentials(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("basic credentials are not valid base64 'email:password'") from None
    email, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("basic credentials must be 'email:password'")
    return email, password


def api_login_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            raise Unauthorized("log in first: send 'Authorization: Bearer <token>' "
                               "(POST /api/tokens) or basic auth")
        return view(*args, **kwargs)
    return wrapper


def api_admin_required(view: Callable) -> Callable:
    @api_login_required
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_admin:
            raise Forbidden("only an admin may do this")
        return view(*args, **kwargs)
    return wrapper


def admin_actor() -> str:
    """For Turnout's admin API: the admin's email (for the audit log), or 401/403."""
    if not current_user.is_authenticated:
        raise Unauthorized("log in as an admin: send 'Authorization: Bearer <token>' or basic auth")
    if not current_user.is_admin:
        raise Forbidden("only an admin may read or change Turnout's flags")
    return current_user.record.email


def dashboard_viewer() -> Viewer | None:
    """For Turnout's dashboard: the logged-in runner (its email goes in the audit log)."""
    if not current_user.is_authenticated:
        return None
    return Viewer(name=current_user.record.email, is_admin=current_user.is_admin)


def dashboard_login(next_path: str) -> str:
    return url_for("accounts_html.login", next=next_path)


def current_user_id() -> int:
    return current_user.id
