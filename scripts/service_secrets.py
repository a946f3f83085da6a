"""Runnerly's service-token policy: who may call whom, with which scopes.

`turnout up` calls `ensure()` before circusd starts (the `before_up` hook in turnout.toml):
the kit's writer (shims/tokendealer/secrets.py) puts the dealer's clients file and each
caller's 0600 secret under `$TURNOUT_RUN_DIR/secrets/`.
"""

from __future__ import annotations

from pathlib import Path

from shims.tokendealer import secrets
from shims.tokendealer.secrets import scopes

# The grants of each client: {client: {audience: [scopes]}}. The importer and the reports
# service reach users and runs through the monolith's routed /rpc by default, or through
# the data service once that is where the data lives.
POLICY: dict[str, dict[str, list[str]]] = {
    "monolith": {"dataservice": scopes("accounts", "runs", "sync"),
                 "stravaimport": scopes("strava"), "reports": scopes("reports")},
    "stravaimport": {"monolith": scopes("accounts", "runs"),
                     "dataservice": scopes("accounts", "runs")},
    "reports": {"monolith": scopes("runs", kinds=("read",)),
                "dataservice": scopes("runs", kinds=("read",))},
}


def ensure(run_dir: Path) -> Path:
    return secrets.ensure(run_dir, POLICY)
