"""HTML pages for runs: the month's runs, add, edit, delete.

Also registers the display filters every page uses (km, pace, duration) and the
month navigation the reports page shares, so numbers read the same everywhere.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from monolith.accounts.html import plain, render_form
from monolith.web import form_data, requested_month
from monolith.wiring import features
from contracts.runs import RunInput, RunRecord
from shims.errors import ValidationError

bp = Blueprint("runs_html", __name__)

FIRST_YEAR, LAST_YEAR = 1970, 2100  # the range shims.fields.month accepts
BLANK = "\N{EN DASH}"  # shown for a value that was never recorded


@bp.app_template_filter("km")
def km(metres: float | None) -> str:
    return BLANK if metres is None else f"{metres / 1000:.2f}"


@bp.app_template_filter("pace")
def pace(seconds_per_km: float | None) -> str:
    """Minutes:seconds per km, rounded to the second (so 4:59.6 shows as 5:00, not 4:60)."""
    if seconds_per_km is None:
        return BLANK
    minutes, seconds = divmod(round(seconds_per_km), 60)
    return f"{minutes}:{seconds:02d}"


@bp.app_template_filter("duration")
def duration(seconds: int | None) -> str:
    if seconds is None:
        return BLANK
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def month_nav(year: int, month: int) -> dict[str, Any]:
    """Title and previous/next (year, month) pairs; None past the range the query accepts."""
    prev = (year - 1, 12) if month == 1 else (year, month - 1)
    nxt = (year + 1, 1) if month == 12 else (year, month + 1)
    return {"year": year, "month": month, "title": f"{calendar.month_name[month]} {year}",
            "prev": prev if prev[0] >= FIRST_YEAR else None,
            "next": nxt if nxt[0] <= LAST_YEAR else None}


def _run_values(run: RunRecord) -> dict[str, str]:
    return {"name": run.name, "distance": plain(run.distance),
            "start_date": _datetime_local(run.start_date),
            "elapsed_time": plain(run.elapsed_time),
            "average_heartrate": plain(run.average_heartrate),
            "total_elevation_gain": plain(run.total_elevation_gain)}


def _datetime_local(moment: dt.datetime) -> str:
    """The value an <input type="datetime-local"> expects: 2026-11-02T07:30."""
    return moment.isoformat(timespec="seconds" if moment.second else "minutes")


def _month_of(run: RunRecord) -> str:
    return url_for(".list_runs", year=run.start_date.year, month=run.start_date.month)


@bp.get("/runs")
@login_required
def list_runs():
    year, month = requested_month(request.args)
    runs = features().runs.list_runs(current_user.id, year, month)
    totals = {"distance": sum(run.distance for run in runs),
              "time": sum(run.elapsed_time for run in runs)}
    return render_template("runs/list.html", runs=runs, totals=totals,
                           nav=month_nav(year, month))


@bp.route("/runs/new", methods=["GET", "POST"])
@login_required
def new_run():
    if request.method == "GET":
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, second=0, microsecond=0)
        return render_form("runs/form.html", {"start_date": _datetime_local(now)}, run=None)
    try:
        run = features().runs.add_run(current_user.id, RunInput.parse(form_data()))
    except ValidationError as error:
        return render_form("runs/form.html", request.form, error, run=None)
    flash(f"Added run “{run.name}”.", "success")
    return redirect(_month_of(run))


@bp.route("/runs/<int:run_id>/edit", methods=["GET", "POST"])
@login_required
def edit_run(run_id: int):
    runs = features().runs
    run = runs.get_run(current_user.id, run_id)  # 404 for a missing run or another runner's
    if request.method == "GET":
        return render_form("runs/form.html", _run_values(run), run=run)
    try:
        run = runs.update_run(current_user.id, run_id, RunInput.parse(form_data()))
    except ValidationError as error:
        return render_form("runs/form.html", request.form, error, run=run)
    flash(f"Saved run “{run.name}”.", "success")
    return redirect(_month_of(run))


@bp.post("/runs/<int:run_id>/delete")
@login_required
def delete_run(run_id: int):
    runs = features().runs
    run = runs.get_run(current_user.id, run_id)
    runs.delete_run(current_user.id, run_id)
    flash(f"Deleted run “{run.name}”.", "success")
    return redirect(_month_of(run))
