"""The admin dashboard at `/_turnout/`: an HTML page for the host app's logged-in admins
(its session, not the JSON API's tokens), with each feature's stage, figures, mismatches
and history, and forms to advance or roll it back (shims/gates, as the JSON API does)."""

from shims.dashboard.access import DashboardAccess, Viewer
from shims.dashboard.views import dashboard_blueprint, is_dashboard_path

__all__ = ["DashboardAccess", "Viewer", "dashboard_blueprint", "is_dashboard_path"]
