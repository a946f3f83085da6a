"""The admin API's routes for gated moves, the guard's switches and the evidence, added to
the `/_turnout/` blueprint (shims/admin.py), behind the same admin check:

- `GET /_turnout/evidence?window=60,900&feature=runs`: every feature's figures per
  window, its guard switch and the verdict of its next move (`evidence_view`);
- `POST /_turnout/flags/<feature>/advance` `{"force", "reason", "wait", "window"}` (each
  optional): the new flag; 422 `gates_failed` with every gate and its numbers; 409
  `move_refused` (a drain), `no_further_stage`, `flag_moved` (someone moved it meanwhile);
- `POST /_turnout/flags/<feature>/rollback` `{"force", "reason", "wait"}`: the same, no gates;
- `PUT /_turnout/guard/<feature>` `{"enabled": true}`: the guard's switch, audited.

Bad input is a 400 naming the field.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Blueprint, jsonify, request

from shims import fields, json_input
from shims.errors import ValidationError
from shims.flags.cache import FlagCache
from shims.flags.model import FlagError, describe_flag
from shims.gates.moves import StageMoves, Step
from shims.gates.verdict import GatesFailed
from shims.guard.switches import GuardSwitches
from shims.wire import to_wire

MAX_MOVE_WAIT = 60  # seconds a request may hold its worker while the mirror catches up
MAX_WINDOWS = 4


def add_gate_routes(blueprint: Blueprint, moves: StageMoves, switches: GuardSwitches,
                    cache: FlagCache, windows: Sequence[int], keep_seconds: int,
                    authorize: Callable[[], str]) -> None:
    """`windows`: the evidence's default windows; `keep_seconds`: the longest there is."""

    @blueprint.get("/evidence")
    def evidence():
        asked = _windows(request.args.get("window"), windows, limit=keep_seconds)
        feature = request.args.get("feature") or None
        names = sorted(moves.store.features) if feature is None else [_known(moves, feature)]
        return jsonify(evidence_view(moves, switches, names, asked))

    @blueprint.post("/flags/<feature>/advance")
    def advance(feature: str):
        data = _body({"force", "reason", "wait", "window"})
        force, reason = _force(data)
        window = fields.integer(data, "window", required=False, minimum=1,
                                maximum=keep_seconds)
        try:
            flag = _waiting(moves, data).advance(feature, actor=authorize(), force=force,
                                                 reason=reason, window=window)
        except GatesFailed as refused:  # with every gate's numbers, not just a message
            return jsonify(refused.to_dict()), refused.status
        cache.refresh_now()
        return jsonify(to_wire(flag))

    @blueprint.post("/flags/<feature>/rollback")
    def rollback(feature: str):
        data = _body({"force", "reason", "wait"})
        force, reason = _force(data)
        flag = _waiting(moves, data).rollback(feature, actor=authorize(), force=force,
                                              reason=reason)
        cache.refresh_now()
        return jsonify(to_wire(flag))

    @blueprint.put("/guard/<feature>")
    def switch_guard(feature: str):
        data = _body({"enabled"})
        if "enabled" not in data:
            raise ValidationError("enabled is required (true or false)", field="enabled")
        enabled = fields.boolean(data, "enabled")
        before = switches.switch(feature, enabled, actor=authorize())
        return jsonify({"feature": feature, "enabled": enabled, "was": before})


def evidence_view(moves: StageMoves, switches: GuardSwitches, names: Sequence[str],
                  windows: Sequence[int]) -> dict[str, Any]:
    """What a dashboard reads: per feature, its stage, its guard switch, its figures over
    each window and the verdict of its next move (each gate with its numbers)."""
    snapshot = moves.store.snapshot()
    by_window = {window: moves.evidence.features(window, only=names) for window in windows}
    guarded = switches.enabled()
    rows = []
    for name in names:
        flag, info = snapshot.flag(name), moves.store.features[name]
        rows.append({
            "feature": name, "mode": flag.mode, "percent": flag.percent,
            "stage": describe_flag(flag), "has_remote": info.has_remote,
            "owns_data": info.owns_data, "guard": {"enabled": guarded.get(name, False)},
            "evidence": {str(window): to_wire(by_window[window][name]) for window in windows},
            "next": _next_moves(moves, name) if info.has_remote else None})
    return {"generated_at": round(time.time(), 3), "killed": snapshot.killed,
            "windows": list(windows), "features": rows}


def _next_moves(moves: StageMoves, name: str) -> dict[str, Any]:
    forward, back = moves.next_step(name), moves.previous_step(name)
    return {"advance": _step_view(forward), "rollback": _step_view(back)}


def _step_view(step: Step) -> dict[str, Any] | None:
    if step.target is None:
        return None
    view: dict[str, Any] = {"to": describe_flag(step.target), "mode": step.target.mode,
                            "percent": step.target.percent}
    if step.verdict is not None:
        view.update(window_seconds=step.verdict.window_seconds, passed=step.verdict.passed,
                    gates=to_wire(step.verdict.results))
    return view


def _body(allowed: set[str]) -> Mapping[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    data = fields.require_mapping(json_input.loads(raw))
    fields.only_known(data, allowed)
    return data


def _force(data: Mapping[str, Any]) -> tuple[bool, str | None]:
    force = fields.boolean(data, "force")
    reason = fields.text(data, "reason", required=False, max_length=120) if force else None
    if force and not reason:
        raise FlagError("force needs a reason: it is recorded in the audit log",
                        field="reason")
    return force, reason


def _waiting(moves: StageMoves, data: Mapping[str, Any]) -> StageMoves:
    return moves.waiting(fields.integer(data, "wait", required=False, minimum=0,
                                        maximum=MAX_MOVE_WAIT, default=10))


def _known(moves: StageMoves, feature: str) -> str:
    if feature not in moves.store.features:
        raise FlagError(f"unknown feature {feature!r}; known features: "
                        f"{', '.join(sorted(moves.store.features))}", field="feature")
    return feature


def _windows(raw: str | None, default: Sequence[int], *, limit: int) -> tuple[int, ...]:
    if raw is None or not raw.strip():
        return tuple(default)
    parts = [part.strip() for part in raw.split(",")]
    if not all(part.isdigit() and 1 <= int(part) <= limit for part in parts) \
            or len(parts) > MAX_WINDOWS:
        raise ValidationError(f"window must be up to {MAX_WINDOWS} lengths in seconds from 1 "
                              f"to {limit}, comma-separated (e.g. 60,900), got {raw[:40]!r}",
                              field="window")
    return tuple(int(part) for part in parts)
