"""The admin JSON API under `/_turnout/`: read and change flags, the kill switch, the audit
log, breakers and recorded mismatches. Every route asks `authorize()` first; it raises
Unauthorized or Forbidden, or returns the name that goes into the audit log.

A change made here is served by the worker that made it at once (its cache looks again
before answering); every other worker takes it up at its next look, within
TURNOUT_FLAGS_REFRESH. The kill switch works like `turnout flags kill`: on a damaged SQLite
store it sets the file aside and starts a new store with the switch on (`note` says so).
It is never applied to this worker alone when the store cannot be written: a kill that one
worker of many obeys is no kill switch, so the answer is the store's error (503), which
names the store and what to run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from flask import Blueprint, jsonify, request

from shims import fields, json_input
from shims.breaker import CircuitBreaker
from shims.flags import recovery
from shims.flags.cache import FlagCache
from shims.flags.model import FlagError, validate_flag
from shims.flags.store import SqlFlagStore
from shims.gates.api import add_gate_routes
from shims.gates.moves import StageMoves
from shims.guard.switches import GuardSwitches
from shims.mirror import Channel
from shims.mismatches import SqlMismatchLog
from shims.stages import StageMover, plan_move
from shims.wire import to_wire

MAX_MOVE_WAIT = 60  # seconds a PUT may hold its worker while the mirror catches up
REALM = "turnout admin"


def admin_blueprint(store: SqlFlagStore, cache: FlagCache, mismatches: SqlMismatchLog,
                    breakers: Mapping[str, CircuitBreaker],
                    authorize: Callable[[], str],
                    channels: Mapping[str, Mapping[str, Channel]] | None = None, *,
                    moves: StageMoves | None = None, switches: GuardSwitches | None = None,
                    windows: Sequence[int] = (60, 900),
                    keep_seconds: int = 3600) -> Blueprint:
    """`channels[feature]`: the mirror of each feature that owns data, so that a flag change
    through the API moves as safely as `turnout flags set` (shims/stages.py). With `moves`
    and `switches`, the gated moves, the guard's switches and the evidence too
    (shims/gates/api.py; `windows`: the evidence's default windows, `keep_seconds` how far
    back it goes, in seconds)."""
    channels = channels or {}
    blueprint = Blueprint("turnout_admin", __name__, url_prefix="/_turnout")

    @blueprint.before_request
    def only_admins():
        authorize()

    @blueprint.after_request
    def ask_for_credentials(response):
        # RFC 9110: a 401 names the scheme to answer it with, so a browser or a client
        # library that lands here knows a bearer token is wanted.
        if response.status_code == 401:
            response.headers.setdefault("WWW-Authenticate", f'Bearer realm="{REALM}"')
        return response

    @blueprint.get("/flags")
    def list_flags():
        return jsonify(flags_view(store, cache, breakers, channels))

    @blueprint.put("/flags/<feature>")
    def set_flag(feature: str):
        data = fields.require_mapping(json_input.loads(request.get_data(cache=True)))
        fields.only_known(data, {"mode", "percent", "force", "reason", "wait"})
        mode = fields.text(data, "mode", max_length=20)
        force = fields.boolean(data, "force")
        reason = fields.text(data, "reason", required=False, max_length=200) if force else None
        if force and not reason:
            raise FlagError("force needs a reason: it is recorded in the audit log",
                            field="reason")
        wait = fields.integer(data, "wait", required=False, minimum=0, maximum=MAX_MOVE_WAIT,
                              default=10)
        actor = authorize() + (f" (forced: {reason})" if force else "")
        new = validate_flag(store.features, feature, mode, data.get("percent"))

        def write():
            return store.set(feature, mode, data.get("percent"), actor=actor)

        if feature not in channels:
            flag = write()
            cache.refresh_now()
            return jsonify(to_wire(flag))
        mover = StageMover(channels[feature], write, wait_seconds=wait)
        flag = mover.move(plan_move(store.snapshot().flag(feature), new), force=force)
        cache.refresh_now()
        return jsonify(to_wire(flag))

    @blueprint.post("/kill")
    def kill():
        note = recovery.kill(store, actor=authorize())
        cache.refresh_now()
        return jsonify({"killed": True, **({"note": note} if note else {})})

    @blueprint.delete("/kill")
    def unkill():
        store.unkill(actor=authorize())
        cache.refresh_now()
        return jsonify({"killed": False})

    @blueprint.get("/history")
    def history():
        feature = request.args.get("feature") or None
        limit = fields.integer(request.args, "limit", required=False, minimum=1, maximum=1000,
                               default=50)
        return jsonify({"history": to_wire(store.history(feature, limit))})

    @blueprint.get("/mismatches")
    def recent_mismatches():
        feature = request.args.get("feature") or None
        if feature is not None and feature not in store.features:
            raise FlagError(f"unknown feature {feature!r}", field="feature")
        limit = fields.integer(request.args, "limit", required=False, minimum=1, maximum=500,
                               default=20)
        return jsonify({"mismatches": to_wire(mismatches.recent(feature, limit))})

    if moves is not None and switches is not None:
        add_gate_routes(blueprint, moves, switches, cache, windows, keep_seconds, authorize)
    return blueprint


def flags_view(store: SqlFlagStore, cache: FlagCache,
               breakers: Mapping[str, CircuitBreaker],
               channels: Mapping[str, Mapping[str, Channel]] | None = None) -> dict:
    """The store's current truth, plus what this process is serving, how its last look at
    the store went, and each mirror's backlog."""
    serving = cache.snapshot()
    snapshot = store.snapshot()
    features = []
    for name, info in sorted(store.features.items()):
        flag = snapshot.flag(name)
        breaker = breakers.get(name)
        features.append({"feature": name, "mode": flag.mode, "percent": flag.percent,
                         "has_remote": info.has_remote, "owns_data": info.owns_data,
                         "breaker": breaker.state if breaker else None,
                         "mirror": _mirror_view((channels or {}).get(name))})
    return {"version": snapshot.version, "killed": snapshot.killed,
            "serving_version": serving.version, "features": features,
            "problems": [{"feature": f, "problem": p} for f, p in snapshot.problems],
            "store_readable": cache.health.readable, "store_problem": cache.health.problem}


def _mirror_view(channels: Mapping[str, Channel] | None) -> dict | None:
    """Each direction's backlog, by the side it delivers to; an unreachable side says why."""
    if not channels:
        return None
    view = {}
    for target, channel in channels.items():
        try:
            backlog = channel.backlog()
            view[target] = {"waiting": backlog.entries, "oldest_seconds": backlog.oldest_seconds}
        except Exception as exc:  # the other side may be down: the flags are still worth showing
            view[target] = {"error": f"{exc.__class__.__name__}: {exc}"[:200]}
    return view
