"""HTML pages for races (server-rendered)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("races_html", __name__)
