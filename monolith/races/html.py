"""HTML pages for races: the race list, a race's page, joining, and the training plan."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user, login_required

from monolith.accounts.html import FORM_ERRORS, render_form
from monolith.wiring import features
from monolith.web import form_data
from shims import fields
from contracts.races import PlannedRunInput, RaceInput
from shims.errors import ContractError

bp = Blueprint("races_html", __name__)

PLAN_FORM_DEFAULTS = {"runs_per_week": "3"}  # what the plan forms show before any input


@bp.route("/races", methods=["GET", "POST"])
@login_required
def list_races():
    races = features().races
    if request.method == "GET":
        return render_form("races/list.html", {}, races=races.list_races(current_user.id))
    try:
        race = races.create_race(current_user.id, RaceInput.parse(form_data()))
    except FORM_ERRORS as error:
        return render_form("races/list.html", request.form, error,
                           races=races.list_races(current_user.id))
    flash(f"Created race “{race.name}”.", "success")
    return redirect(url_for(".race", race_id=race.id))


@bp.get("/races/<int:race_id>")
@login_required
def race(race_id: int):
    return _race_page(race_id, PLAN_FORM_DEFAULTS)


def _race_page(race_id: int, form: Mapping[str, Any], error: ContractError | None = None):
    """The race, and the runner's plan when they have joined (plan() refuses otherwise)."""
    races = features().races
    record = races.get_race(current_user.id, race_id)
    plan = races.plan(current_user.id, race_id) if record.joined else []
    can_delete = record.created_by == current_user.id or current_user.is_admin
    return render_form("races/detail.html", form, error, race=record, plan=plan,
                       can_delete=can_delete, today=dt.date.today())


@bp.post("/races/<int:race_id>/delete")
@login_required
def delete_race(race_id: int):
    races = features().races
    record = races.get_race(current_user.id, race_id)
    races.delete_race(current_user.id, race_id)  # Forbidden unless creator or admin
    flash(f"Deleted race “{record.name}”.", "success")
    return redirect(url_for(".list_races"))


@bp.post("/races/<int:race_id>/join")
@login_required
def join(race_id: int):
    try:
        record = features().races.join_race(current_user.id, race_id)
    except FORM_ERRORS as error:  # joined already, or the race is over: say so on its page
        return _race_page(race_id, PLAN_FORM_DEFAULTS, error)
    flash(f"You joined “{record.name}”. Good luck!", "success")
    return redirect(url_for(".race", race_id=race_id))


@bp.post("/races/<int:race_id>/leave")
@login_required
def leave(race_id: int):
    record = features().races.leave_race(current_user.id, race_id)
    flash(f"You left “{record.name}”; its training plan is gone too.", "success")
    return redirect(url_for(".race", race_id=race_id))


@bp.post("/races/<int:race_id>/plan")
@login_required
def add_planned_run(race_id: int):
    races = features().races
    races.get_race(current_user.id, race_id)  # 404 for an unknown race before any 400
    try:
        planned = races.add_planned_run(current_user.id, race_id,
                                        PlannedRunInput.parse(form_data()))
    except FORM_ERRORS as error:
        return _race_page(race_id, request.form, error)
    flash(f"Planned a run on {planned.date:%d %b %Y}.", "success")
    return redirect(url_for(".race", race_id=race_id))


@bp.post("/races/<int:race_id>/plan/<int:planned_id>/delete")
@login_required
def delete_planned_run(race_id: int, planned_id: int):
    features().races.delete_planned_run(current_user.id, race_id, planned_id)
    flash("Removed the planned run.", "success")
    return redirect(url_for(".race", race_id=race_id))


@bp.post("/races/<int:race_id>/plan/generate")
@login_required
def generate_plan(race_id: int):
    races = features().races
    races.get_race(current_user.id, race_id)
    try:
        fields.only_known(request.form, {"runs_per_week", "csrf_token"}, "form")
        runs_per_week = fields.integer(request.form, "runs_per_week", minimum=1, maximum=7)
        had_plan = bool(races.plan(current_user.id, race_id))
        plan = races.generate_plan(current_user.id, race_id, runs_per_week, dt.date.today())
    except FORM_ERRORS as error:
        return _race_page(race_id, request.form, error)
    flash(_generated(len(plan), had_plan), "success")
    return redirect(url_for(".race", race_id=race_id))


def _generated(count: int, had_plan: bool) -> str:
    """Says a plan was replaced only when there was one: a first plan replaces nothing."""
    runs = f"{count} run{'s' if count != 1 else ''}"
    return f"Generated a plan of {runs}" + (", replacing the previous plan." if had_plan
                                            else ".")
