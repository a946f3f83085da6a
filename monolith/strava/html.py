"""HTML pages for strava (server-rendered)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("strava_html", __name__)
