"""The dashboard's own CSRF token: one random value per browser session, in the host's
Flask session, sent back by every form and compared on every POST. The kit's own (not the
host's CSRF library, which the host exempts the dashboard from): a host may have none."""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

SESSION_KEY = "_turnout_csrf"
FORM_FIELD = "turnout_csrf"


def token() -> str:
    """This session's token, made on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def valid_post() -> bool:
    """Whether this POST carries the session's token (a session without one: never)."""
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FORM_FIELD, "")
    return isinstance(expected, str) and bool(expected) and \
        hmac.compare_digest(expected.encode(), sent.encode())
