"""The composition root for any Flask monolith: `Turnout().init_app(app, registry)`.

Given the app, its feature registry (shims/registry.py) and settings (shims/defaults.py),
`init_app` builds, once per process:

- the flag store and its in-memory cache, one breaker per feature with a remote side,
  a shadow runner per routed contract, the mismatch log and the metrics;
- each feature's implementations: its local side from the registry's factory, its remote
  client over a pooled HTTP transport (with dealer tokens when this process has a client
  secret), a `Router` between them, and, for a feature that owns data, the mirror
  channels and the applier that drains its outbox;
- the evidence every router, shadow runner and applier reports (shims/evidence), the
  gated stage moves (shims/gates) and the rollback guard (shims/guard), which the app's
  server workers start with the appliers (`start_appliers`);
- on the app: a span and a JSON log line per request (shims/traced_requests.py), then one
  deadline per request (installed first, so every later hook runs within both), the
  `X-Turnout-Route` header, `/healthz`, `/metrics`, the admin API under
  `/_turnout/` (when the app says who is an admin) and `/rpc` for the contracts it
  serves to its extracted services.

It returns the routed contracts, by contract name; views call only those. Call it before
registering the app's own hooks and blueprints. No I/O happens at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import Blueprint, Flask, current_app
from sqlalchemy.engine import Engine

from shims import deadline, json_input, trace, traced_requests
from shims.admin import admin_blueprint
from shims.auth import client_tokens, verifying_guard
from shims.dashboard import DashboardAccess, Viewer, dashboard_blueprint
from shims.control import Control, add_applier, build_control, serving_flags, start_appliers
from shims.defaults import kit_settings
from shims.gates.moves import StageMoves
from shims.guard.runner import LEASE_NAME, Guard
from shims.health import health_blueprint
from shims.metrics import metrics_blueprint
from shims.mirror import Channel, Lease, mirror_channels
from shims.ops import loopback_only
from shims.registry import Feature, Registry, Resources
from shims.remote import client_options
from shims.router import Router, Sides
from shims.openapi import openapi_document
from shims.service import rpc_blueprint
from shims.settings import ConfigError
from shims.shadow import ShadowRunner
from shims.sync import RemoteDataSync
from shims.transport import HttpTransport, Transport, transport_for

EXTENSION_KEY = "turnout"
GUARD_MOVE_WAIT = 10.0  # seconds the guard lets a drain take before it retries next tick


class InitHook(Protocol):
    """Told about every `init_app` in this process: a test harness (shims/pytest_plugin.py)
    uses it to serve remote sides in-process and to watch shadows, without the app's code
    knowing. Production code has no hooks."""

    def transports(self, app: Flask, registry: Registry,
                   settings: Mapping[str, Any]) -> Mapping[str, Transport]: ...

    def built(self, app: Flask, state: TurnoutState) -> None: ...


_hooks: list[InitHook] = []


def add_init_hook(hook: InitHook) -> Callable[[], None]:
    """`hook` hears of every later `init_app`; returns what removes it."""
    _hooks.append(hook)
    return lambda: _hooks.remove(hook)


class Routed(Mapping[str, Any]):
    """The implementation each contract is answered by (a Router where the feature has a
    remote side), by contract name; also as attributes: `routed.runs.list_runs(...)`."""

    def __init__(self, implementations: dict[str, Any]):
        self._implementations = implementations

    def __getitem__(self, name: str) -> Any:
        return self._implementations[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._implementations)

    def __len__(self) -> int:
        return len(self._implementations)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._implementations[name]
        except KeyError:
            raise AttributeError(f"no contract named {name!r}; routed: "
                                 f"{', '.join(self._implementations)}") from None


@dataclass
class TurnoutState:
    """What `init_app` built for one app, in `app.extensions["turnout"]`."""

    registry: Registry
    settings: dict[str, Any]
    control: Control
    routed: Routed
    channels: dict[str, dict[str, Channel]] = field(default_factory=dict)
    shadows: list[ShadowRunner] = field(default_factory=list)
    # The kit's blueprints, for an app that must exempt them from its CSRF protection
    # (they take JSON from programs; the dashboard's forms carry the kit's own token).
    blueprints: list[Blueprint] = field(default_factory=list)
    transports: dict[str, Transport] = field(default_factory=dict)
    moves: StageMoves | None = None  # advance and rollback, on evidence (shims/gates)

    def drain_shadows(self, timeout: float = 5.0) -> int:
        """Wait until every shadow started so far has compared (tests; a plain test never
        yields to the hub otherwise); the number still running at the timeout."""
        return sum(runner.drain(timeout) for runner in self.shadows)

    def start_appliers(self) -> None:
        """Server workers only (the app's wsgi module): tests and CLIs drain themselves."""
        start_appliers(self.control)


class Turnout:
    """The Flask extension. `authorize_admin()` raises the app's 401/403 or returns the
    name the audit log records; without it the admin API is not mounted."""

    def __init__(self, app: Flask | None = None, registry: Registry | None = None,
                 **options: Any):
        if app is not None:
            if registry is None:
                raise ConfigError("Turnout(app, registry): a registry is needed")
            self.init_app(app, registry, **options)

    def init_app(self, app: Flask, registry: Registry, *,
                 settings: Mapping[str, Any] | None = None, engine: Engine | None = None,
                 extras: Mapping[str, Any] | None = None,
                 authorize_admin: Callable[[], str] | None = None,
                 serve: Iterable[str] = (), name: str = "monolith",
                 transports: Mapping[str, Transport] | None = None,
                 dashboard_viewer: Callable[[], Viewer | None] | None = None,
                 dashboard_login: Callable[[str], str] | None = None) -> Routed:
        """`settings`: the kit's (shims/defaults.py); by default the `TURNOUT_*` keys of
        `app.config`, then `TURNOUT_*` environment variables, then the defaults.
        `engine`: the monolith's database, needed by features that own data (their
        outbox and mirror lease live there). `serve`: contract names this app answers on
        `/rpc` for its services, as routed (an extracted service reaching users through the
        monolith lands wherever the monolith's own calls would). `name`: this app's
        service name, the audience of the tokens its `/rpc` accepts. `transports`: by
        feature, what reaches its service instead of HTTP (e.g. a `WsgiTransport` to the
        service app in the same process, as the pytest plugin does).
        `dashboard_viewer`: who the app's browser session belongs to (a `Viewer`, None
        for nobody), and `dashboard_login(next_path)`: the URL of the app's login page;
        with both, the HTML dashboard is served at `/_turnout/` (shims/dashboard)."""
        if settings is None:  # as Flask extensions do: TURNOUT_* keys of app.config
            settings = kit_settings(registry, _prefixed(app.config))
        settings = dict(settings)
        traced_requests.install(app)  # first: every later hook runs inside the request's span
        deadline.install(app, settings["REQUEST_DEADLINE"])  # then: later hooks within it
        json_input.ensure_body_limit(app)  # its /rpc and admin API read bodies
        control = build_control(settings, registry.infos())
        transports = dict(transports or {})
        for hook in list(_hooks):
            transports.update(hook.transports(app, registry, settings))
        state = TurnoutState(registry=registry, settings=settings, control=control,
                             routed=Routed({}), transports=transports)
        state.routed = Routed(_build_features(state, engine, dict(extras or {})))
        state.moves = _gated_moves(state)
        app.extensions[EXTENSION_KEY] = state
        _report_routes(app)
        state.blueprints = _blueprints(state, engine, name, list(serve), authorize_admin)
        access = _dashboard_access(dashboard_viewer, dashboard_login)
        if access is not None:
            state.blueprints.append(dashboard_blueprint(
                control, state.moves, access, control.evidence_config.windows))
        for blueprint in state.blueprints:
            app.register_blueprint(blueprint)
        loopback_only(app)
        for hook in list(_hooks):
            hook.built(app, state)
        return state.routed


def _prefixed(config: Mapping[str, Any], prefix: str = "TURNOUT_") -> dict[str, Any]:
    return {key[len(prefix):]: value for key, value in config.items() if key.startswith(prefix)}


def state() -> TurnoutState:
    """The current app's Turnout (inside an app or request context)."""
    return current_app.extensions[EXTENSION_KEY]


def routed() -> Routed:
    return state().routed


def _build_features(state: TurnoutState, engine: Engine | None,
                    extras: dict[str, Any]) -> dict[str, Any]:
    implementations: dict[str, Any] = {}
    for feature in state.registry:
        resources = Resources(settings=state.settings, engine=engine,
                              routed=Routed(dict(implementations)), extras=extras)
        implementations.update(_build_feature(state, feature, resources))
    return implementations


def _build_feature(state: TurnoutState, feature: Feature,
                   resources: Resources) -> dict[str, Any]:
    locals_ = {b.spec.name: b.local(resources) for b in feature.bindings}
    if feature.service is None:
        return locals_
    settings = state.settings
    transport = state.transports.get(feature.name) or service_transport(settings, feature)
    sides_data: dict[str, Any] = {}
    channels = None
    if feature.data is not None:
        if resources.engine is None:
            raise ConfigError(f"feature {feature.name!r} owns data: init_app needs the "
                              "monolith's engine (engine=...) for its outbox")
        sides_data = {"local_sync": feature.data.local_sync(resources.engine),
                      "remote_sync": RemoteDataSync(transport)}
        channels = mirror_channels(feature.name, sides_data["local_sync"],
                                   sides_data["remote_sync"])
        state.channels[feature.name] = channels
        add_applier(state.control, feature.name, channels, resources.engine,
                    settings["MIRROR_INTERVAL"])
    routers = {}
    for binding in feature.bindings:
        remote = binding.remote(transport, **client_options(settings))
        shadow = _shadow_runner(state, feature)
        routers[binding.spec.name] = Router(
            feature.info, binding.spec,
            Sides(local=locals_[binding.spec.name], remote=remote, **sides_data),
            flags=state.control.flags, breaker=state.control.breakers[feature.name],
            metrics=state.control.metrics, shadow=shadow,
            mirror=feature.data.mirror if feature.data else None, channels=channels,
            silent_for=settings["REMOTE_READ_TIMEOUT"], evidence=state.control.recorder)
    return routers


def service_transport(settings: Mapping[str, Any], feature: Feature) -> HttpTransport:
    """HTTP to the feature's service at `<SERVICE>_URL`, with dealer tokens when this
    process has a client secret: the monolith's routers and the `turnout` command alike."""
    url = settings.get(feature.url_setting or "")
    if not url:
        raise ConfigError(f"feature {feature.name!r}: set TURNOUT_{feature.url_setting} to "
                          f"the {feature.service} service's URL")
    return transport_for(settings, url, client_tokens(settings, feature.service or ""))


def _shadow_runner(state: TurnoutState, feature: Feature) -> ShadowRunner:
    settings = state.settings
    ignore = frozenset(f.strip() for f in settings["SHADOW_IGNORE"].split(",") if f.strip())
    runner = ShadowRunner(feature.name, state.control.metrics, state.control.mismatches,
                          timeout=settings["SHADOW_TIMEOUT"],
                          max_in_flight=settings["SHADOW_MAX_IN_FLIGHT"], ignore=ignore,
                          context=list(feature.shadow_context),
                          listener=state.control.recorder.shadow,
                          recheck_after=settings["SHADOW_RECHECK_SECONDS"])
    state.shadows.append(runner)
    return runner


def _gated_moves(state: TurnoutState) -> StageMoves:
    """Advance and rollback for the admin API, and the rollback guard that uses them."""
    control = state.control
    moves = StageMoves(control.store, control.evidence, control.policy,
                       channels=state.channels.get)
    tick = state.settings["GUARD_TICK_SECONDS"]
    control.guards.append(Guard(
        control.store, control.evidence, moves.waiting(GUARD_MOVE_WAIT), control.switches,
        Lease(control.evidence_store.engine, LEASE_NAME, ttl=max(3.0, 3 * tick)),
        metrics=control.metrics, tick=tick,
        settle=control.evidence_config.flush_seconds + 1.0))
    return moves


def _report_routes(app: Flask) -> None:
    """Every response says which side answered each routed call (shims/trace.py)."""
    app.before_request(trace.start)

    @app.after_request
    def add_route_header(response):
        value = trace.header_value()
        if value:
            response.headers[trace.HEADER] = value
        return response


def _blueprints(state: TurnoutState, engine: Engine | None, name: str, serve: list[str],
                authorize_admin: Callable[[], str] | None) -> list[Blueprint]:
    control, settings = state.control, state.settings
    unknown = [contract for contract in serve if contract not in state.routed]
    if unknown:
        raise ConfigError(f"serve: no contract named {', '.join(unknown)}; known: "
                          f"{', '.join(state.routed)}")
    blueprints = [health_blueprint(name, engine, lambda: serving_flags(control)),
                  metrics_blueprint(control.metrics)]
    if serve:
        guard = verifying_guard(settings, name) if settings["SERVICE_TOKENS"] else None
        bindings = [(_spec_of(state.registry, contract), state.routed[contract])
                    for contract in serve]
        document = openapi_document(f"{name} /rpc", "1.0", [spec for spec, _ in bindings],
                                    "the contracts this app serves to its services")
        blueprints.append(rpc_blueprint(bindings, observe=control.metrics.observe_served,
                                        guard=guard, document=document))
    if authorize_admin is not None:
        blueprints.append(admin_blueprint(control.store, control.flags, control.mismatches,
                                          control.breakers, authorize=authorize_admin,
                                          channels=state.channels, moves=state.moves,
                                          switches=control.switches,
                                          windows=control.evidence_config.windows,
                                          keep_seconds=control.evidence_config.keep_seconds))
    return blueprints


def _dashboard_access(viewer: Callable[[], Viewer | None] | None,
                      login: Callable[[str], str] | None) -> DashboardAccess | None:
    if viewer is None and login is None:
        return None
    if viewer is None or login is None:
        raise ConfigError("the dashboard needs both dashboard_viewer (who is logged in) and "
                          "dashboard_login (where to log in), or neither")
    return DashboardAccess(viewer=viewer, login_url=login)


def _spec_of(registry: Registry, contract: str):
    return next(b.spec for f in registry for b in f.bindings if b.spec.name == contract)
