"""`advance` and `rollback`: one stage along the path, the way every other move is made.

An advance is judged first (shims/gates/verdict.py) on the evidence of the feature's gate
window; refused, it raises GatesFailed with every failed gate's numbers. A rollback has no
gates: going back is always allowed. Either way the move itself is the one `turnout flags
set` makes: a feature that owns data moves through `shims.stages.StageMover`, which drains
the mirror into a side before it becomes authoritative and refuses (MoveRefused) when it
cannot; the flag is written only if it is still the one the move was decided on
(FlagMoved otherwise), so two movers never step over each other.

`force` (with a reason, recorded with the actor in the audit log) means, for an advance,
past its gates (the drains still happen; `turnout flags set --force` skips those too); for
a rollback, at once, without draining, as `set --force` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shims.errors import Conflict
from shims.evidence.model import EvidenceReader
from shims.flags.model import Flag, describe_flag, validate_flag
from shims.flags.store import SqlFlagStore
from shims.gates.config import Policy
from shims.gates.path import next_stage, previous_stage, stage_path
from shims.gates.verdict import GatesFailed, Verdict, judge
from shims.mirror import Channel
from shims.sync import Backlog
from shims.stages import Progress, StageMover, plan_move

ChannelsOf = Callable[[str], Mapping[str, Channel] | None]


class NoFurtherStage(Conflict):
    """The feature is at the end of its path in that direction (or has no remote side)."""

    code = "no_further_stage"


@dataclass(frozen=True)
class Step:
    """A move one stage along the path, and for an advance, its verdict."""

    feature: str
    current: Flag
    target: Flag | None
    verdict: Verdict | None = None

    @property
    def description(self) -> str:
        target = describe_flag(self.target) if self.target else "(none)"
        return f"{self.feature}: {describe_flag(self.current)} -> {target}"


class StageMoves:
    def __init__(self, store: SqlFlagStore, evidence: EvidenceReader, policy: Policy,
                 channels: ChannelsOf = lambda _feature: None, *, wait_seconds: float = 60.0,
                 progress: Progress = lambda _: None):
        """`channels(feature)`: the feature's mirror channels (None if it owns no data)."""
        self.store = store
        self.evidence = evidence
        self.policy = policy
        self._channels = channels
        self._wait = wait_seconds
        self._progress = progress

    def waiting(self, seconds: float, progress: Progress | None = None) -> StageMoves:
        """The same moves, draining for at most `seconds` (an API request's `wait`)."""
        return StageMoves(self.store, self.evidence, self.policy, self._channels,
                          wait_seconds=seconds, progress=progress or self._progress)

    # --- deciding ---------------------------------------------------------------------

    def next_step(self, feature: str, *, window: int | None = None) -> Step:
        """Where an advance would go, judged on the last `window` seconds (the feature's
        gate window by default); target None at the end of the path."""
        current, path = self._where(feature)
        target = next_stage(current, path)
        if target is None:
            return Step(feature, current, None)
        gates = self.policy.gates_of(feature)
        evidence = self.evidence.feature(feature, window or gates.window)
        verdict = judge(current, target, evidence, gates,
                        owns_data=self.store.features[feature].owns_data,
                        backlogs=self._backlogs(feature))
        return Step(feature, current, target, verdict)

    def previous_step(self, feature: str) -> Step:
        current, path = self._where(feature)
        return Step(feature, current, previous_stage(current, path))

    # --- moving -----------------------------------------------------------------------

    def advance(self, feature: str, *, actor: str, force: bool = False,
                reason: str | None = None, window: int | None = None,
                step: Step | None = None) -> Flag:
        """`step`: the one `next_step` judged (and its caller showed), else judged now."""
        step = step if step is not None else self.next_step(feature, window=window)
        if step.target is None:
            raise NoFurtherStage(f"{feature} is at {describe_flag(step.current)}, the last "
                                 "stage of its path: there is nothing to advance to")
        if step.verdict is not None and not step.verdict.passed:
            if not force:
                raise GatesFailed(step.verdict)
            actor = f"{actor} (forced past gates: {reason})"
        return self._move(step, step.target, actor=actor, drain=True)

    def rollback(self, feature: str, *, actor: str, force: bool = False,
                 reason: str | None = None) -> Flag:
        step = self.previous_step(feature)
        if step.target is None:
            raise NoFurtherStage(f"{feature} is at {describe_flag(step.current)}, the first "
                                 "stage of its path: there is nothing to roll back to")
        if force:
            actor = f"{actor} (forced: {reason})"
        return self._move(step, step.target, actor=actor, drain=not force)

    def _move(self, step: Step, target: Flag, *, actor: str, drain: bool) -> Flag:
        def write() -> Flag:
            return self.store.set(step.feature, target.mode,
                                  target.percent if target.mode == "canary" else None,
                                  actor=actor, expected=step.current)

        channels = self._channels(step.feature)
        if not self.store.features[step.feature].owns_data or not channels:
            return write()
        mover = StageMover(dict(channels), write, wait_seconds=self._wait,
                           progress=self._progress)
        return mover.move(plan_move(step.current, target), force=not drain)

    def _where(self, feature: str) -> tuple[Flag, tuple[Flag, ...]]:
        validate_flag(self.store.features, feature, "local")  # an unknown feature: FlagError
        info = self.store.features[feature]
        if not info.has_remote:
            raise NoFurtherStage(f"{feature} has no remote side yet: it stays local")
        path = stage_path(info, self.policy.gates_of(feature).canary_steps)
        return self.store.snapshot().flag(feature), path

    def _backlogs(self, feature: str) -> dict[str, Backlog | Exception]:
        found: dict[str, Backlog | Exception] = {}
        for target, channel in (self._channels(feature) or {}).items():
            try:
                found[target] = channel.backlog()
            except Exception as exc:  # the other side is down: the gate says so
                found[target] = exc
        return found
