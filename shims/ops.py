"""Operations endpoints (`/metrics`, `/healthz`) answer loopback callers only, by default.

They need no token, so they must not be open to the network: metrics name features,
methods and error rates, and health answers reveal worker ids. A Prometheus or a load
balancer on another host is let in with `TURNOUT_OPS_PUBLIC=true`.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, request

from shims.service import error_response
from shims.settings import load_settings

OPS_PATHS = ("/metrics", "/healthz")


def loopback_only(app: Flask, paths: tuple[str, ...] = OPS_PATHS) -> None:
    if load_settings({"OPS_PUBLIC": False})["OPS_PUBLIC"]:
        return

    @app.before_request
    def refuse_remote_callers():
        if request.path in paths and not _is_loopback(request.remote_addr):
            return error_response(403, "forbidden", f"{request.path} answers loopback callers "
                                  "only; set TURNOUT_OPS_PUBLIC=true to open it")
        return None


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False
