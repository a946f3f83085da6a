"""HTML pages for reports (server-rendered)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("reports_html", __name__)
