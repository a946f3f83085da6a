"""JSON API for accounts: sign-up, tokens, the runner's own profile, admin user management."""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask_login import current_user

from monolith.auth import (api_admin_required, api_login_required, end_logins_of_deleted,
                           issue_token, log_out_everywhere, revoke_current_token)
from monolith.web import json_body, json_response, no_content
from monolith.wiring import features
from shims import fields
from contracts.accounts import PROFILE_FIELDS, Profile, SignUp
from shims.errors import Conflict, ValidationError

bp = Blueprint("accounts_api", __name__, url_prefix="/api")


@bp.post("/users")
def sign_up():
    user = features().accounts.sign_up(SignUp.parse(json_body()))
    return json_response(user, 201)


@bp.post("/tokens")
def create_token():
    """Basic auth or a JSON body with email and password; answers a bearer token. A bearer
    token sent alone renews itself, but only up to its login's maximum lifetime; a body,
    when sent, names the credentials (and is checked) and begins a new login."""
    renewal = current_user.is_authenticated and not request.get_data(cache=True).strip()
    if renewal:
        user_id = current_user.id
    else:
        data = json_body()
        fields.only_known(data, {"email", "password"})
        # min_length=1: a short password is simply wrong here (401), not malformed (400).
        password = fields.password(data, min_length=1)
        user_id = features().accounts.authenticate(fields.email(data), password).id
    token, expires_in = issue_token(user_id, renewal=renewal)
    return no_store(json_response({"token": token, "token_type": "Bearer",  # nosec B105
                                   "expires_in": expires_in}, 201))


@bp.delete("/tokens")
@api_login_required
def revoke_token():
    """Revokes the bearer token this request carries, and every renewal of its login."""
    if not revoke_current_token():
        raise ValidationError("send the bearer token to revoke in the Authorization header",
                              field="Authorization")
    return no_content()


@bp.delete("/me/logins")
@api_login_required
def end_every_login():
    """Log out everywhere: every browser session and API token of the runner ends."""
    log_out_everywhere(current_user.id)
    return no_content()


def no_store(response: Response) -> Response:
    """A credential must not be kept by a browser or proxy cache (RFC 6749 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.get("/me")
@api_login_required
def me():
    return json_response(current_user.record)


@bp.patch("/me")
@api_login_required
def update_me():
    data = json_body()
    fields.only_known(data, set(PROFILE_FIELDS))
    accounts = features().accounts
    profile = Profile.parse(data, base=accounts.get_user(current_user.id).profile)
    return json_response(accounts.update_profile(current_user.id, profile))


@bp.put("/me/strava")
@api_login_required
def link_strava():
    data = json_body()
    fields.only_known(data, {"strava_token"})
    token = fields.text(data, "strava_token", max_length=200)
    return json_response(features().strava.link(current_user.id, token))


@bp.delete("/me/strava")
@api_login_required
def unlink_strava():
    return json_response(features().accounts.link_strava(current_user.id, None))


@bp.get("/admin/users")
@api_admin_required
def list_users():
    return json_response(features().accounts.list_users())


@bp.post("/admin/users")
@api_admin_required
def create_user():
    data = dict(json_body())
    is_admin = fields.boolean(data, "is_admin")
    data.pop("is_admin", None)
    accounts = features().accounts
    return json_response(accounts.sign_up(SignUp.parse(data), is_admin=is_admin), 201)


@bp.get("/admin/users/<int:user_id>")
@api_admin_required
def get_user(user_id: int):
    return json_response(features().accounts.get_user(user_id))


@bp.patch("/admin/users/<int:user_id>")
@api_admin_required
def update_user(user_id: int):
    """Profile fields and `is_admin`; validated whole before anything is written."""
    data = json_body()
    fields.only_known(data, {*PROFILE_FIELDS, "is_admin"})
    accounts = features().accounts
    user = accounts.get_user(user_id)
    profile = Profile.parse(data, base=user.profile)
    is_admin = fields.boolean(data, "is_admin", default=user.is_admin)
    if user_id == current_user.id and not is_admin:
        raise Conflict("you cannot remove your own admin rights", field="is_admin")
    if profile != user.profile:
        user = accounts.update_profile(user_id, profile)
    if is_admin != user.is_admin:
        user = accounts.set_admin(user_id, is_admin)
    return json_response(user)


@bp.delete("/admin/users/<int:user_id>")
@api_admin_required
def delete_user(user_id: int):
    if user_id == current_user.id:
        raise Conflict("you cannot delete your own account from the admin API")
    features().accounts.delete_user(user_id)
    end_logins_of_deleted(user_id)
    return no_content()
