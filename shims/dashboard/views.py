"""The dashboard's routes, under the admin API's `/_turnout` prefix:

- `GET /_turnout/`: every feature's panel (shims/dashboard/page.py);
- `POST /_turnout/dashboard/<feature>/advance` and `.../rollback`: form fields
  `turnout_csrf`, and `force` with a `reason` (required with force). The moves are
  `StageMoves`, as `POST /_turnout/flags/<feature>/advance` makes them, with the admin the
  host names as actor. A refused advance shows the page again with every gate and its
  numbers (422); any other refusal (a drain, the end of the path, an unknown feature, a
  missing reason) shows it with its message and status.

A host whose JSON API treats every `/_turnout/` path as token-only must let the
dashboard's paths (`is_dashboard_path`) use its browser session instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Blueprint, flash, redirect, render_template, request, url_for

from shims.control import Control
from shims.dashboard import csrf
from shims.dashboard.access import DashboardAccess, admit, current_admin
from shims.dashboard.page import feature_panels
from shims.errors import TurnoutError, ValidationError
from shims.gates.moves import StageMoves
from shims.gates.verdict import GatesFailed, Verdict

PREFIX = "/_turnout"
ACTIONS = f"{PREFIX}/dashboard/"
MOVE_WAIT = 10  # seconds a form's move may drain a mirror before it is refused
MAX_REASON = 120
# The page has no script and loads only its own stylesheet; its charts are inline SVG
# drawn with attributes and classes, which style-src 'self' allows (no style= anywhere).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # figures and audit entries: never from a cache
}


def is_dashboard_path(path: str) -> bool:
    """The dashboard's paths: HTML for a logged-in browser, unlike the rest of /_turnout/."""
    return path == f"{PREFIX}/" or path.startswith(ACTIONS)


def dashboard_blueprint(control: Control, moves: StageMoves, access: DashboardAccess,
                        windows: Sequence[int]) -> Blueprint:
    blueprint = Blueprint("turnout_dashboard", __name__, url_prefix=PREFIX,
                          template_folder="templates", static_folder="static",
                          static_url_path="/dashboard/static")

    @blueprint.before_request
    def only_admins_and_forms_from_here():
        if request.endpoint == "turnout_dashboard.static":
            return None  # the stylesheet holds no secret
        refused = admit(access)
        if refused is None and request.method == "POST" and not csrf.valid_post():
            return _page(control, moves, windows, status=400,
                         error="This form's security token is missing or out of date "
                               "(turnout_csrf): nothing was changed. Reload the page and "
                               "try again.")
        return refused

    @blueprint.after_request
    def security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @blueprint.context_processor
    def helpers():
        return {"turnout_csrf": csrf.token, "csrf_field": csrf.FORM_FIELD,
                "rate": _rate, "ms": _ms}

    @blueprint.get("/")
    def page():
        return _page(control, moves, windows)

    @blueprint.post("/dashboard/<feature>/advance")
    def advance(feature: str):
        def move(waiting: StageMoves, actor: str, force: bool, reason: str | None):
            return waiting.advance(feature, actor=actor, force=force, reason=reason)
        return _move(control, moves, windows, feature, "advanced", move)

    @blueprint.post("/dashboard/<feature>/rollback")
    def rollback(feature: str):
        def move(waiting: StageMoves, actor: str, force: bool, reason: str | None):
            return waiting.rollback(feature, actor=actor, force=force, reason=reason)
        return _move(control, moves, windows, feature, "rolled back", move)

    return blueprint


def _move(control, moves, windows, feature, done, move):
    try:
        force, reason = _force_and_reason()
        flag = move(moves.waiting(MOVE_WAIT), current_admin().name, force, reason)
    except GatesFailed as refused:  # every gate with its numbers, on the page
        return _page(control, moves, windows, status=refused.status, refused=refused.verdict,
                     error=str(refused))
    except TurnoutError as refused:  # a drain, the end of the path, bad input
        return _page(control, moves, windows, status=refused.status, error=refused.message)
    control.flags.refresh_now()
    flash(f"{feature} {done} to {flag.mode}"
          + (f" {flag.percent:g}%" if flag.mode == "canary" else ""), "turnout")
    return redirect(url_for("turnout_dashboard.page") + f"#feature-{feature}", code=303)


def _force_and_reason() -> tuple[bool, str | None]:
    force = request.form.get("force") == "yes"
    reason = request.form.get("reason", "").strip()
    if force and not reason:
        raise ValidationError("force needs a reason: it is recorded in the audit log",
                              field="reason")
    if len(reason) > MAX_REASON:
        raise ValidationError(f"reason must be at most {MAX_REASON} characters",
                              field="reason")
    return force, (reason if force else None)


def _page(control: Control, moves: StageMoves, windows: Sequence[int], *, status: int = 200,
          refused: Verdict | None = None, error: str | None = None):
    killed = control.store.snapshot().killed
    return render_template("turnout_dashboard/page.html", admin=current_admin(),
                           panels=feature_panels(control, moves, windows), windows=windows,
                           killed=killed, refused=refused, error=error), status


NONE_YET = "\u2013"  # an en dash: no evidence to compute it on (never shown as 0)


def _rate(value: float | None) -> str:
    return NONE_YET if value is None else f"{100 * value:.2f}%"


def _ms(value: float | None) -> str:
    return NONE_YET if value is None else f"{value:.0f} ms"
