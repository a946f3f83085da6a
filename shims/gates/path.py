"""The stage path a feature moves along, one step at a time (docs/turnout.md §2 and §4):

    local → dualwrite → shadow → canary 5 → 25 → 50 → live → rampdown → remote

with the canary percentages from the policy (`canary_steps`). A feature that does not own
data skips `dualwrite` and `rampdown`: with no mirror, dualwrite writes only locally (it is
`local`) and rampdown only remotely (it is `remote`). A feature with no remote side has
nowhere to go.

A flag set by hand off the path (`canary 30`, `dualwrite` on a feature without data) is
placed by its position, so the next stage is the first one after it and the previous one
the last one before it.
"""

from __future__ import annotations

from collections.abc import Sequence

from shims.flags.model import MODES, FeatureInfo, Flag

RANK = {mode: index for index, mode in enumerate(MODES)}
DATA_ONLY = ("dualwrite", "rampdown")


def position(flag: Flag) -> tuple[int, float]:
    return RANK[flag.mode], flag.percent if flag.mode == "canary" else 0.0


def stage_path(info: FeatureInfo, canary_steps: Sequence[float]) -> tuple[Flag, ...]:
    if not info.has_remote:
        return (Flag(info.name),)
    path = []
    for mode in MODES:
        if mode in DATA_ONLY and not info.owns_data:
            continue
        if mode == "canary":
            path += [Flag(info.name, "canary", float(step)) for step in canary_steps]
        else:
            path.append(Flag(info.name, mode))
    return tuple(path)


def next_stage(flag: Flag, path: Sequence[Flag]) -> Flag | None:
    here = position(flag)
    return next((stage for stage in path if position(stage) > here), None)


def previous_stage(flag: Flag, path: Sequence[Flag]) -> Flag | None:
    here = position(flag)
    return next((stage for stage in reversed(path) if position(stage) < here), None)
