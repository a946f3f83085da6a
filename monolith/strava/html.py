"""HTML pages for Strava: link status, the runner's own import, and an admin import of everyone.

Strava is outside our control, so its failures (UpstreamError) and a missing link
(NotFound) are shown on the Strava page with their status, never as a 500.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from monolith.accounts.html import admin_required
from monolith.wiring import features
from contracts.strava import ImportResult
from shims.errors import NotFound, UpstreamError

bp = Blueprint("strava_html", __name__)

NOT_LINKED = "Link your Strava account on your profile page before importing."


@bp.get("/strava")
@login_required
def status():
    return _strava_page()


@bp.post("/strava/import")
@login_required
def import_mine():
    try:
        result = features().strava.import_user(current_user.id)
    except NotFound:
        return _strava_page(NOT_LINKED, NotFound.status)
    except UpstreamError as error:
        return _strava_page(f"Strava import failed: {error.message}", error.status)
    flash(_summary(result), "success")
    return redirect(url_for(".status"))


@bp.post("/admin/strava/import")
@admin_required
def import_everyone():
    """One flash line per linked runner: a failure for one does not hide the others."""
    results = features().strava.import_all()
    emails = {user.id: user.email for user in features().accounts.list_users()}
    flash(f"Imported Strava runs for {len(results)} linked runner(s).", "success")
    for result in results:
        who = emails.get(result.user_id, f"user {result.user_id}")
        if result.error:
            flash(f"{who}: Strava import failed: {result.error}", "error")
        else:
            flash(f"{who}: {_summary(result)}", "success")
    return redirect(url_for(".status"))


def _summary(result: ImportResult) -> str:
    message = f"Imported {result.created} new runs ({result.skipped} already known)"
    if result.ignored:
        message += f"; {result.ignored} activities were not runs and were left out"
    return message


def _strava_page(problem: str | None = None, status: int = 200):
    user = features().accounts.get_user(current_user.id)
    return render_template("strava/status.html", user=user, problem=problem), status
