"""`turnout flags advance|rollback|guard|evidence`: gated moves, the guard's switches and
the evidence, from a shell, on the same store, evidence and policy the workers use.

An advance its gates refuse exits 1 with one line per failed gate (GatesFailed is caught
by the command, not by the one-line error handler): the numbers are the point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shims.cli.sides import DataSides
from shims.evidence.config import EvidenceConfig
from shims.evidence.model import FeatureEvidence, SideFigures
from shims.evidence.reader import Evidence
from shims.evidence.store import SqlEvidenceStore, evidence_engine, evidence_url
from shims.flags.model import describe_flag
from shims.flags.store import SqlFlagStore
from shims.gates.moves import StageMoves
from shims.gates.verdict import GatesFailed, Verdict
from shims.guard.switches import GuardSwitches


def gated_moves(store: SqlFlagStore, project: Any, sides: DataSides, *, wait: float,
                progress=print) -> StageMoves:
    config = EvidenceConfig.from_settings(project.settings)
    url = evidence_url(project.settings["FLAGS_URL"], project.settings.get("EVIDENCE_URL"))
    evidence = Evidence(SqlEvidenceStore(evidence_engine(url)), store.features,
                        bucket_seconds=config.bucket_seconds)
    policy = project.file.policy
    policy.require_features(store.features, str(project.file.path))
    registry = project.registry

    def channels(feature: str):
        found = registry[feature]
        return sides.channels(found) if found.data is not None else None

    return StageMoves(store, evidence, policy, channels, wait_seconds=wait, progress=progress)


def advance(moves: StageMoves, feature: str, *, actor: str, force: bool, reason: str | None,
            window: int | None) -> list[str]:
    step = moves.next_step(feature, window=window)
    lines = verdict_lines(step.verdict) if step.verdict is not None else []
    flag = moves.advance(feature, actor=actor, force=force, reason=reason, step=step)
    return [*lines, f"{feature} -> {describe_flag(flag)} (every worker within a second)"]


def rollback(moves: StageMoves, feature: str, *, actor: str, force: bool,
             reason: str | None) -> list[str]:
    flag = moves.rollback(feature, actor=actor, force=force, reason=reason)
    return [f"{feature} -> {describe_flag(flag)} (every worker within a second)"]


def refusal_lines(refused: GatesFailed) -> list[str]:
    verdict = refused.verdict
    failed = verdict.failed
    return [f"turnout: {verdict.feature}: {verdict.current} -> {verdict.target} refused by "
            f"{len(failed)} gate{'s' if len(failed) != 1 else ''} over the last "
            f"{verdict.window_seconds}s:",
            *(f"  {result.line()}" for result in failed),
            "(`--force --reason \"...\"` moves past them; it is audited)"]


def verdict_lines(verdict: Verdict) -> list[str]:
    if not verdict.results:
        return [f"{verdict.feature}: {verdict.current} -> {verdict.target}: no gate applies"]
    return [f"{verdict.feature}: {verdict.current} -> {verdict.target}, gates over the last "
            f"{verdict.window_seconds}s:",
            *(f"  {'ok  ' if r.passed else 'FAIL'} {r.line()}" for r in verdict.results)]


def guard(store: SqlFlagStore, project: Any, feature: str, state: str, actor: str) -> list[str]:
    switches = GuardSwitches(store, project.file.policy)
    before = switches.switch(feature, state == "on", actor=actor)
    return [f"{feature}: guard {state} (was {'on' if before else 'off'})"]


def evidence(moves: StageMoves, switches: GuardSwitches, feature: str | None,
             window: int) -> list[str]:
    names = [feature] if feature else sorted(moves.store.features)
    figures = moves.evidence.features(window, only=names)
    snapshot, guarded = moves.store.snapshot(), switches.enabled()
    lines = []
    for name in names:
        state = "on" if guarded.get(name) else "off"
        lines.append(f"{name}: {describe_flag(snapshot.flag(name))}, guard {state}, last "
                     f"{window}s")
        lines += ["  " + line for line in figure_lines(figures[name])]
        if moves.store.features[name].has_remote:
            step = moves.next_step(name)
            lines += ["  " + line for line in (verdict_lines(step.verdict) if step.verdict
                                               else ["at the end of its path"])]
    return lines


def figure_lines(found: FeatureEvidence) -> list[str]:
    shadow, breaker = found.shadow, found.breaker
    lines = [_side(found.local), _side(found.remote),
             f"shadow: {shadow.compared} compared, {shadow.mismatches} mismatched "
             f"({shadow.transient} transient, {shadow.persistent} persistent), "
             f"{shadow.errors} errors, {shadow.timeouts} timeouts, {shadow.skipped} skipped",
             f"breaker: worst {breaker.worst}, now {breaker.now}"
             f"{_fallbacks(found.fallbacks)}"]
    lines += [f"mirror to {m.target}: {m.pushed} pushed, {m.deferred} deferred, backlog "
              f"{'?' if m.backlog is None else m.backlog}" for m in found.mirror]
    return lines


def _side(side: SideFigures) -> str:
    if not side.calls:
        return f"{side.side}: no calls"
    return (f"{side.side}: {side.calls} calls, {side.errors} errors "
            f"({(side.error_rate or 0) * 100:.2f}%), p50 {side.p50_ms:.1f} ms, "
            f"p99 {side.p99_ms:.1f} ms")


def _fallbacks(found: Mapping[str, int]) -> str:
    if not found:
        return ""
    return "; fallbacks " + ", ".join(f"{reason} {n}" for reason, n in found.items())
