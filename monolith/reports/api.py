"""JSON API for reports."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user

from monolith.auth import api_login_required
from monolith.web import json_response, requested_month
from monolith.wiring import features

bp = Blueprint("reports_api", __name__, url_prefix="/api/reports")


@bp.get("/monthly")
@api_login_required
def monthly():
    year, month = requested_month(request.args)
    return json_response(features().reports.monthly_report(current_user.id, year, month))
