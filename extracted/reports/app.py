"""The reports service's app factory.

The service serves the `reports` contract with the monolith's own `LocalReports`, given
the Runs contract over HTTP instead of an in-process implementation. It has no database,
so its `/healthz` checks no
dependency: see `shims.health`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from monolith.reports.service import LocalReports
from shims import deadline, remote
from shims.auth import AUTH_DEFAULTS, client_tokens
from contracts.reports import REPORTS
from contracts.runs import RemoteRuns
from shims.service import Guard
from shims.service_app import service_app
from shims.settings import load_settings
from shims.transport import HttpTransport, TokenSource, Transport, transport_for

SERVICE = "reports"
DEFAULTS: dict[str, Any] = {
    # Where the Runs contract is answered: the monolith's routed /rpc by default (its runs
    # flag decides the side); the data service once runs is fully remote.
    "REPORTS_DATA_URL": "http://127.0.0.1:5000",
    # Who the tokens for those calls are for: "monolith", or "dataservice" when the
    # data URL points at the data service itself.
    "REPORTS_DATA_AUDIENCE": "monolith",
    "REMOTE_CONNECT_TIMEOUT": 0.5,
    "REMOTE_READ_TIMEOUT": 5.0,
    **AUTH_DEFAULTS,
    "CLIENT_ID": SERVICE,  # its calls to the data contracts carry this client's tokens
    **deadline.DEFAULTS,
    # No read budget: with no local side to fall back on, a read cut short would only fail.
    **remote.WRITE_DEFAULTS,
    "REMOTE_POOL_SIZE": 200,  # connections per worker to the data contracts
}


def load_config(override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return load_settings(DEFAULTS, override, positive=(*deadline.DEFAULTS, *remote.WRITE_DEFAULTS))


def build_data_transport(settings: Mapping[str, Any],
                         tokens: TokenSource | None = None) -> HttpTransport:
    """The transport to the data contracts; `tokens` adds service-to-service bearer tokens."""
    return transport_for(settings, settings["REPORTS_DATA_URL"], tokens)


def create_app(config: Mapping[str, Any] | None = None, *, data_transport: Transport | None = None,
               guard: Guard | None = None) -> Flask:
    """`data_transport` replaces the HTTP transport to the Runs contract (tests pass a
    WsgiTransport); `guard` checks each caller's token (shims/auth.py). No I/O happens here."""
    settings = load_config(config)
    transport = data_transport if data_transport is not None else build_data_transport(
        settings, client_tokens(settings, settings["REPORTS_DATA_AUDIENCE"]))
    runs = RemoteRuns(transport, **remote.client_options(settings))
    return service_app(
        SERVICE, settings, [(REPORTS, LocalReports(runs))], guard=guard,
        health_details=lambda: {"data_url": settings["REPORTS_DATA_URL"]},
        title="Runnerly reports",
        description="A runner's monthly statistics, computed from runs read through the Runs "
                    'contract. POST a method\'s arguments as {"args": {...}}, get '
                    '{"result": ...} or a JSON error.')
