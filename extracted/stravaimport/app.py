"""The Strava importer's app factory.

The service serves the `strava` contract with the monolith's own `LocalStravaImport`,
given the Accounts and Runs contracts over HTTP instead of in-process implementations.
It has no database, so its `/healthz` checks no dependency: see `shims.health`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from monolith.strava.client import StravaClient
from monolith.strava.service import LocalStravaImport
from shims import deadline, remote
from shims.auth import AUTH_DEFAULTS, client_tokens
from contracts.accounts import RemoteAccounts
from contracts.runs import RemoteRuns
from contracts.strava import STRAVA
from shims.service import Guard
from shims.service_app import service_app
from shims.settings import load_settings
from shims.transport import HttpTransport, TokenSource, Transport, pooled_session, transport_for

SERVICE = "stravaimport"
DEFAULTS: dict[str, Any] = {
    "STRAVA_URL": "http://127.0.0.1:5090",
    "STRAVA_TIMEOUT": 5.0,
    "STRAVA_IMPORT_DAYS": 90,
    # Where the Accounts and Runs contracts are answered: the monolith's routed /rpc by
    # default (its runs flag decides the side); the data service once runs is fully remote.
    "STRAVAIMPORT_DATA_URL": "http://127.0.0.1:5000",
    # Who the tokens for those calls are for: "monolith", or "dataservice" when the
    # data URL points at the data service itself.
    "STRAVAIMPORT_DATA_AUDIENCE": "monolith",
    "REMOTE_CONNECT_TIMEOUT": 0.5,
    "REMOTE_READ_TIMEOUT": 5.0,
    **AUTH_DEFAULTS,
    "CLIENT_ID": SERVICE,  # its calls to the data contracts carry this client's tokens
    **deadline.DEFAULTS,
    # No read budget: with no local side to fall back on, a read cut short would only fail.
    **remote.WRITE_DEFAULTS,
    "REMOTE_POOL_SIZE": 200,  # connections per worker, to the data contracts and to Strava
}


def load_config(override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return load_settings(DEFAULTS, override, positive=(*deadline.DEFAULTS, *remote.WRITE_DEFAULTS))


def build_data_transport(settings: Mapping[str, Any],
                         tokens: TokenSource | None = None) -> HttpTransport:
    """The transport to the data contracts; `tokens` adds service-to-service bearer tokens."""
    return transport_for(settings, settings["STRAVAIMPORT_DATA_URL"], tokens)


def create_app(config: Mapping[str, Any] | None = None, *, data_transport: Transport | None = None,
               guard: Guard | None = None) -> Flask:
    """`data_transport` replaces the HTTP transport to the data contracts (tests pass a
    WsgiTransport); `guard` checks each caller's token (shims/auth.py). No I/O happens here."""
    settings = load_config(config)
    transport = data_transport if data_transport is not None else build_data_transport(
        settings, client_tokens(settings, settings["STRAVAIMPORT_DATA_AUDIENCE"]))
    client = StravaClient(settings["STRAVA_URL"], timeout=settings["STRAVA_TIMEOUT"],
                          session=pooled_session(settings["REMOTE_POOL_SIZE"]))
    options = remote.client_options(settings)
    importer = LocalStravaImport(RemoteAccounts(transport, **options),
                                 RemoteRuns(transport, **options), client,
                                 days=settings["STRAVA_IMPORT_DAYS"])
    return service_app(
        SERVICE, settings, [(STRAVA, importer)], guard=guard,
        health_details=lambda: {"strava_url": settings["STRAVA_URL"],
                                "data_url": settings["STRAVAIMPORT_DATA_URL"]},
        title="Runnerly Strava importer",
        description="Imports each linked runner's recent Strava runs, reading users and writing "
                    "runs through the data contracts. POST a method's arguments as "
                    '{"args": {...}}, get {"result": ...} or a JSON error (Strava failing is '
                    "502 upstream_error).")
