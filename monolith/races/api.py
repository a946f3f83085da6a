"""JSON API for races and training plans."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint
from flask_login import current_user

from monolith.auth import api_login_required
from monolith.web import json_body, json_response, no_content
from monolith.wiring import features
from shims import fields
from contracts.races import PlannedRunInput, RaceInput

bp = Blueprint("races_api", __name__, url_prefix="/api/races")


@bp.get("")
@api_login_required
def list_races():
    return json_response({"races": features().races.list_races(current_user.id)})


@bp.post("")
@api_login_required
def create_race():
    return json_response(features().races.create_race(current_user.id,
                                                      RaceInput.parse(json_body())), 201)


@bp.get("/<int:race_id>")
@api_login_required
def get_race(race_id: int):
    return json_response(features().races.get_race(current_user.id, race_id))


@bp.delete("/<int:race_id>")
@api_login_required
def delete_race(race_id: int):
    features().races.delete_race(current_user.id, race_id)
    return no_content()


@bp.post("/<int:race_id>/join")
@api_login_required
def join(race_id: int):
    return json_response(features().races.join_race(current_user.id, race_id))


@bp.post("/<int:race_id>/leave")
@api_login_required
def leave(race_id: int):
    return json_response(features().races.leave_race(current_user.id, race_id))


@bp.get("/<int:race_id>/plan")
@api_login_required
def plan(race_id: int):
    return json_response({"race_id": race_id,
                          "plan": features().races.plan(current_user.id, race_id)})


@bp.post("/<int:race_id>/plan")
@api_login_required
def add_planned_run(race_id: int):
    planned = PlannedRunInput.parse(json_body())
    return json_response(features().races.add_planned_run(current_user.id, race_id, planned), 201)


@bp.post("/<int:race_id>/plan/generate")
@api_login_required
def generate_plan(race_id: int):
    data = json_body()
    fields.only_known(data, {"runs_per_week", "start"})
    runs_per_week = fields.integer(data, "runs_per_week", minimum=1, maximum=7)
    start = fields.date(data, "start", required=False) or dt.date.today()
    planned = features().races.generate_plan(current_user.id, race_id, runs_per_week, start)
    return json_response({"race_id": race_id, "plan": planned}, 201)


@bp.delete("/<int:race_id>/plan/<int:planned_id>")
@api_login_required
def delete_planned_run(race_id: int, planned_id: int):
    features().races.delete_planned_run(current_user.id, race_id, planned_id)
    return no_content()
