"""JSON API for Strava import: the runner's own import, and an admin import of everyone."""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from monolith.auth import api_admin_required, api_login_required
from monolith.web import json_response
from monolith.wiring import features

bp = Blueprint("strava_api", __name__, url_prefix="/api")


@bp.post("/strava/import")
@api_login_required
def import_mine():
    return json_response(features().strava.import_user(current_user.id))


@bp.post("/admin/strava/import")
@api_admin_required
def import_everyone():
    return json_response({"results": features().strava.import_all()})
