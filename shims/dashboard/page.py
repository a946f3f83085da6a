"""What the dashboard shows of each feature, gathered from the kit's own parts: the flag
store (stage, history), the evidence (figures per window and per minute), the gates (the
verdict of the next advance), the breakers, the guard's switches and the mismatch log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from shims.control import Control
from shims.dashboard.charts import Chart, chart
from shims.dashboard.diff import DiffRow, side_by_side
from shims.evidence.model import FeatureEvidence
from shims.flags.model import AuditEntry, describe_flag
from shims.gates.moves import StageMoves, Step
from shims.mismatches import MismatchRecord

CHART_WINDOW, CHART_STEP = 900, 60  # the last 15 minutes, minute by minute
MISMATCHES_SHOWN, HISTORY_SHOWN = 3, 12


@dataclass(frozen=True)
class ShownMismatch:
    record: MismatchRecord
    rows: list[DiffRow]


@dataclass(frozen=True)
class FeaturePanel:
    name: str
    stage: str
    mode: str
    percent: float | None
    has_remote: bool
    owns_data: bool
    breaker_here: str | None  # this process's breaker; the evidence has every worker's
    guard_enabled: bool
    evidence: dict[int, FeatureEvidence]  # by window, in seconds
    charts: tuple[Chart, ...]
    advance: Step | None
    rollback: Step | None
    step_problem: str | None  # why the next moves could not be judged (a side down...)
    mismatches: list[ShownMismatch]
    history: list[AuditEntry]


def feature_panels(control: Control, moves: StageMoves,
                   windows: Sequence[int]) -> list[FeaturePanel]:
    snapshot = control.store.snapshot()
    guarded = control.switches.enabled()
    by_window = {window: control.evidence.features(window) for window in windows}
    panels = []
    for name, info in sorted(control.store.features.items()):
        flag = snapshot.flag(name)
        breaker = control.breakers.get(name)
        advance, rollback, problem = _steps(moves, name) if info.has_remote else (None, None,
                                                                                   None)
        panels.append(FeaturePanel(
            name=name, stage=describe_flag(flag), mode=flag.mode, percent=flag.percent,
            has_remote=info.has_remote, owns_data=info.owns_data,
            breaker_here=breaker.state if breaker else None,
            guard_enabled=guarded.get(name, False),
            evidence={window: by_window[window][name] for window in windows},
            charts=_charts(control, name),
            advance=advance, rollback=rollback, step_problem=problem,
            mismatches=[ShownMismatch(m, side_by_side(m.primary, m.shadow, m.differences))
                        for m in control.mismatches.recent(name, MISMATCHES_SHOWN)],
            history=control.store.history(name, HISTORY_SHOWN)))
    return panels


def _steps(moves: StageMoves, name: str) -> tuple[Step | None, Step | None, str | None]:
    try:
        return moves.next_step(name), moves.previous_step(name), None
    except Exception as exc:  # one feature's trouble must not take the whole page down
        return None, None, f"{exc.__class__.__name__}: {exc}"[:300]


def _charts(control: Control, name: str) -> tuple[Chart, ...]:
    steps = control.evidence.series(name, CHART_WINDOW, CHART_STEP)

    def per_side(figure: str) -> dict[str, list[float | None]]:
        return {side: [getattr(step.side(side), figure) for step in steps]
                for side in ("local", "remote")}

    return (chart("calls per minute", "calls", per_side("calls")),
            chart("errors per minute", "errors", per_side("errors")),
            chart("p99 per minute", "ms", per_side("p99_ms")))
