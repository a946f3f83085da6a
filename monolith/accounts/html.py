"""HTML pages for accounts (server-rendered)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("accounts_html", __name__)
