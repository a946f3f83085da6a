"""JSON API for runs: the logged-in runner's own runs only."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user

from monolith.auth import api_login_required
from monolith.web import json_body, json_response, no_content, requested_month
from monolith.wiring import features
from contracts.runs import RUN_FIELDS, RunInput
from shims.wire import to_wire

bp = Blueprint("runs_api", __name__, url_prefix="/api/runs")


@bp.get("")
@api_login_required
def list_runs():
    year, month = requested_month(request.args)
    runs = features().runs.list_runs(current_user.id, year, month)
    return json_response({"year": year, "month": month, "runs": runs})


@bp.post("")
@api_login_required
def add_run():
    run = features().runs.add_run(current_user.id, RunInput.parse(json_body()))
    return json_response(run, 201)


@bp.get("/<int:run_id>")
@api_login_required
def get_run(run_id: int):
    return json_response(features().runs.get_run(current_user.id, run_id))


@bp.put("/<int:run_id>")
@api_login_required
def replace_run(run_id: int):
    runs = features().runs
    runs.get_run(current_user.id, run_id)  # 404 before 400: the run must be theirs
    return json_response(runs.update_run(current_user.id, run_id, RunInput.parse(json_body())))


@bp.patch("/<int:run_id>")
@api_login_required
def update_run(run_id: int):
    runs = features().runs
    current = to_wire(runs.get_run(current_user.id, run_id))
    changes = json_body()
    merged = {name: current[name] for name in RUN_FIELDS} | dict(changes)
    return json_response(runs.update_run(current_user.id, run_id, RunInput.parse(merged)))


@bp.delete("/<int:run_id>")
@api_login_required
def delete_run(run_id: int):
    features().runs.delete_run(current_user.id, run_id)
    return no_content()
