"""Which side answered: the routes taken while serving one request.

The router records each call's side here; the app reports them in an
`X-Turnout-Route` response header (e.g. `runs.list_runs=remote`), so a team can
see, request by request, which track a canary user was sent down. A context
variable keeps each greenlet's requests apart (gevent gives every greenlet its
own context).
"""

from __future__ import annotations

from contextvars import ContextVar

_routes: ContextVar[list[str] | None] = ContextVar("turnout_routes", default=None)
HEADER = "X-Turnout-Route"


def start() -> None:
    _routes.set([])


def record(method: str, side: str) -> None:
    routes = _routes.get()
    if routes is not None and len(routes) < 20:
        routes.append(f"{method}={side}")


def header_value() -> str | None:
    routes = _routes.get()
    return ", ".join(dict.fromkeys(routes)) if routes else None
