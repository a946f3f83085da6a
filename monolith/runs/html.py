"""HTML pages for runs (server-rendered)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("runs_html", __name__)
