"""HTML pages for accounts: landing, sign-up, login, profile, Strava link, admin user management.

Also home to the two helpers every HTML blueprint shares: `admin_required` and
`render_form`, the one way a form page answers (with its error's status and the
user's own input when the submission was refused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from monolith.auth import end_logins_of_deleted, log_in, log_out, log_out_everywhere
from monolith.wiring import features
from shims import fields
from contracts.accounts import PROFILE_FIELDS, Profile, SignUp, UserRecord
from shims.errors import (Conflict, ContractError, Forbidden, Unauthorized, Unprocessable,
                          UpstreamError, ValidationError)

bp = Blueprint("accounts_html", __name__)

# Errors that mean "this submission was refused": re-render the form, write nothing.
FORM_ERRORS = (ValidationError, Conflict)


def admin_required(view: Callable) -> Callable:
    @login_required
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_admin:
            raise Forbidden("only an admin may see this page")
        return view(*args, **kwargs)
    return wrapper


def render_form(template: str, form: Mapping[str, Any], error: ContractError | None = None,
                **context: Any):
    """A page with a form: 200 when fresh, the error's status (and its message) when refused."""
    status = error.status if error is not None else 200
    return render_template(template, form=form, error=error, **context), status


def plain(value: Any) -> str:
    """A stored value as a form field shows it: blank for None, 70 rather than 70.0."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def profile_values(user: UserRecord) -> dict[str, str]:
    return {name: plain(getattr(user, name)) for name in PROFILE_FIELDS}


def safe_next(target: str | None) -> str | None:
    """A path on this site to return to after login, or None.

    Only a relative path is honoured: "//evil.example", "https://evil.example" or
    a backslash trick would make the login form an open redirect.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ch.isspace() or ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def _home_page() -> str:
    return url_for("runs_html.list_runs")


# --- landing, sign-up, login, logout -------------------------------------------------------


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(_home_page())
    return render_template("accounts/index.html")


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if request.method == "GET":
        return render_form("accounts/signup.html", {})
    try:
        user = features().accounts.sign_up(SignUp.parse(request.form))
    except FORM_ERRORS as error:
        return render_form("accounts/signup.html", request.form, error)
    log_in(user)
    flash(f"Welcome to Runnerly, {user.display_name}!", "success")
    return redirect(_home_page())


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(next_url or _home_page())
        return render_form("accounts/login.html", {"next": next_url or ""})
    try:
        user = _authenticate(request.form)
    except (ValidationError, Unauthorized) as error:
        return render_form("accounts/login.html", request.form, error)
    log_in(user)
    flash(f"Welcome back, {user.display_name}.", "success")
    return redirect(next_url or _home_page())


def _authenticate(form: Mapping[str, Any]) -> UserRecord:
    email = fields.email(form)
    password = form.get("password", "")
    if not password:  # not fields.text: it would strip spaces that are part of a password
        raise ValidationError("password is required", field="password")
    return features().accounts.authenticate(email, password)


@bp.post("/logout")
def logout():
    log_out()
    flash("You are logged out.", "success")
    return redirect(url_for(".index"))


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere():
    """Ends every browser session and API token of the runner, this one included."""
    ended = log_out_everywhere(current_user.id)
    log_out()
    flash(f"You are logged out everywhere ({ended} login{'s' if ended != 1 else ''} ended).",
          "success")
    return redirect(url_for(".index"))


# --- the runner's own profile and Strava link ------------------------------------------------


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile():
    accounts = features().accounts
    user = accounts.get_user(current_user.id)
    if request.method == "GET":
        return _profile_page(user, profile_values(user))
    try:
        fields.only_known(request.form, {*PROFILE_FIELDS, "csrf_token"}, "form")
        accounts.update_profile(user.id, Profile.parse(request.form, base=user.profile))
    except ValidationError as error:
        return _profile_page(user, request.form, error)
    flash("Profile saved.", "success")
    return redirect(url_for(".profile"))


@bp.post("/profile/strava")
@login_required
def link_strava():
    accounts = features().accounts
    try:
        fields.only_known(request.form, {"strava_token", "csrf_token"}, "form")
        token = fields.text(request.form, "strava_token", max_length=200)
        features().strava.link(current_user.id, token)  # Strava checks the token first
    except (ValidationError, Unprocessable, UpstreamError) as error:
        user = accounts.get_user(current_user.id)
        return _profile_page(user, profile_values(user) | dict(request.form.items()), error)
    flash("Strava account linked.", "success")
    return redirect(url_for(".profile"))


@bp.post("/profile/strava/unlink")
@login_required
def unlink_strava():
    features().accounts.link_strava(current_user.id, None)
    flash("Strava account unlinked.", "success")
    return redirect(url_for(".profile"))


def _profile_page(user: UserRecord, form: Mapping[str, Any], error: ContractError | None = None):
    return render_form("accounts/profile.html", form, error, user=user)


# --- admin: every user ---------------------------------------------------------------------


@bp.route("/admin/users", methods=["GET", "POST"])
@admin_required
def admin_users():
    accounts = features().accounts
    if request.method == "GET":
        return render_form("accounts/admin_users.html", {}, users=accounts.list_users())
    try:
        data = request.form.to_dict()
        is_admin = fields.boolean(data, "is_admin")
        data.pop("is_admin", None)  # not a SignUp field: it is the admin's decision, not theirs
        # sign_up(..., is_admin=) is LocalAccounts' extension, as used by the JSON API.
        user = accounts.sign_up(SignUp.parse(data), is_admin=is_admin)
    except FORM_ERRORS as error:
        return render_form("accounts/admin_users.html", request.form, error,
                           users=accounts.list_users())
    flash(f"Created {'admin' if user.is_admin else 'user'} {user.email}.", "success")
    return redirect(url_for(".admin_users"))


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def admin_user(user_id: int):
    accounts = features().accounts
    user = accounts.get_user(user_id)
    if request.method == "GET":
        values = profile_values(user) | {"is_admin": "on" if user.is_admin else ""}
        return render_form("accounts/admin_user.html", values, user=user)
    try:
        _update_user(user, request.form)
    except FORM_ERRORS as error:
        return render_form("accounts/admin_user.html", request.form, error, user=user)
    flash(f"Saved {user.email}.", "success")
    return redirect(url_for(".admin_user", user_id=user_id))


def _update_user(user: UserRecord, form: Mapping[str, Any]) -> None:
    """Validate the whole form before writing anything; an unchecked box means not admin."""
    fields.only_known(form, {*PROFILE_FIELDS, "is_admin", "csrf_token"}, "form")
    profile = Profile.parse(form, base=user.profile)
    is_admin = fields.boolean(form, "is_admin")
    if user.id == current_user.id and not is_admin:
        raise Conflict("you cannot remove your own admin rights", field="is_admin")
    accounts = features().accounts
    if profile != user.profile:
        accounts.update_profile(user.id, profile)
    if is_admin != user.is_admin:
        accounts.set_admin(user.id, is_admin)


@bp.post("/admin/users/<int:user_id>/delete")
@admin_required
def admin_delete_user(user_id: int):
    accounts = features().accounts
    user = accounts.get_user(user_id)  # 404 for an unknown id, before any other check
    if user.id == current_user.id:
        raise Conflict("you cannot delete your own account")
    accounts.delete_user(user.id)
    end_logins_of_deleted(user.id)
    flash(f"Deleted {user.email}.", "success")
    return redirect(url_for(".admin_users"))
