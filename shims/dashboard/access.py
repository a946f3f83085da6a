"""Who may see the dashboard. The kit cannot know the host app's users, so the host tells
it: `viewer()` says who is logged in (None: nobody), `login_url(next_path)` where to send a
browser to log in first. Anonymous browsers are redirected there; a logged-in non-admin
gets a 403 page; an admin's `name` is the actor of every move it makes (the audit log)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Response, g, redirect, render_template, request


@dataclass(frozen=True)
class Viewer:
    name: str  # as the audit log records it: an email, a login name
    is_admin: bool


@dataclass(frozen=True)
class DashboardAccess:
    viewer: Callable[[], Viewer | None]
    login_url: Callable[[str], str]


def admit(access: DashboardAccess) -> Response | tuple[str, int] | None:
    """None to let an admin through (`current_admin()` names them), else the answer."""
    viewer = access.viewer()
    if viewer is None:
        return redirect(access.login_url(request.full_path.rstrip("?")), code=303)
    if not viewer.is_admin:
        return render_template("turnout_dashboard/denied.html", viewer=viewer), 403
    g.turnout_dashboard_admin = viewer
    return None


def current_admin() -> Viewer:
    return g.turnout_dashboard_admin
