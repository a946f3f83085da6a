"""The migration policy from the project file: `[gates]` (what an advance must show) and
`[guard]` (when the rollback guard moves a feature back), each a table of defaults with a
sub-table per feature that overrides some of them:

    [gates]
    window = 900
    max_error_rate = 0.01
    [gates.runs]
    min_comparisons = 500
    [guard]
    enabled = true
    window = 60
    [guard.reports]
    max_p99_ms = 4000

Both the `turnout` command and the monolith's workers read it (the workers find the file
by `TURNOUT_PROJECT`, which `turnout up` sets; without it they use the defaults below).
Every mistake is one ConfigError naming the key, e.g.
"turnout.toml: `gates.runs.max_error_rate` must be a number from 0 to 1, got 2".
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from shims.settings import ConfigError


@dataclass(frozen=True)
class GateSettings:
    window: int = 900  # seconds of evidence an advance is judged on
    min_comparisons: int = 100  # shadow comparisons needed, in stages that shadow
    max_mismatch_rate: float = 0.001  # persistent mismatches / comparisons
    min_calls: int = 100  # remote calls needed, in stages that call the remote side
    max_error_rate: float = 0.01  # remote calls that failed / remote calls
    max_p99_ratio: float = 1.5  # remote p99 / local p99, where both sides answer
    max_mirror_backlog: int = 100  # changes waiting in a direction the stage drains
    max_mirror_lag: float = 30.0  # seconds the oldest of them has waited
    canary_steps: tuple[float, ...] = (5.0, 25.0, 50.0)  # the canary percentages, in order


@dataclass(frozen=True)
class GuardSettings:
    enabled: bool = False  # the default; `turnout flags guard FEATURE on|off` decides at run time
    window: int = 60  # seconds a breach must hold, in every bucket, before the guard acts
    min_calls: int = 20  # remote calls in the window before error rate or p99 count
    max_error_rate: float = 0.25
    max_p99_ms: float = 2500.0  # 0: latency never triggers the guard
    breaker_open: bool = True  # a breaker open (any worker) all window long triggers it
    cooldown: int = 300  # seconds after acting before it may act on the feature again


@dataclass(frozen=True)
class Policy:
    gates: GateSettings = field(default_factory=GateSettings)
    guard: GuardSettings = field(default_factory=GuardSettings)
    gates_by_feature: Mapping[str, GateSettings] = field(default_factory=dict)
    guard_by_feature: Mapping[str, GuardSettings] = field(default_factory=dict)

    def gates_of(self, feature: str) -> GateSettings:
        return self.gates_by_feature.get(feature, self.gates)

    def guard_of(self, feature: str) -> GuardSettings:
        return self.guard_by_feature.get(feature, self.guard)

    def require_features(self, known: Collection[str], where: str) -> None:
        """A per-feature table must name a feature of the registry."""
        for table, named in (("gates", self.gates_by_feature), ("guard", self.guard_by_feature)):
            for feature in named:
                if feature not in known:
                    raise ConfigError(f"{where}: `{table}.{feature}` names no feature of the "
                                      f"registry; features: {', '.join(sorted(known))}")

    def require_windows(self, bucket_seconds: int, keep_seconds: int, where: str) -> None:
        """Each window must cover at least two evidence buckets, and fit in what is kept."""
        for feature, settings in [("", self.gates), *self.gates_by_feature.items(),
                                  ("", self.guard), *self.guard_by_feature.items()]:
            table = "gates" if isinstance(settings, GateSettings) else "guard"
            key = f"{table}.{feature + '.' if feature else ''}window"
            if not 2 * bucket_seconds <= settings.window <= keep_seconds:
                raise ConfigError(
                    f"{where}: `{key}` is {settings.window}s; it must be from "
                    f"{2 * bucket_seconds}s (two evidence buckets, TURNOUT_EVIDENCE_BUCKET_SECONDS"
                    f"={bucket_seconds}) to {keep_seconds}s (TURNOUT_EVIDENCE_KEEP_SECONDS)")


# --- reading the tables -----------------------------------------------------------------

Check = Callable[[str, Any], Any]  # (key, value) -> the value, or ConfigError


def parse_policy(data: Mapping[str, Any], where: str) -> Policy:
    """The `gates` and `guard` tables of a parsed project file (absent: the defaults)."""
    gates, gates_by = _table(data, "gates", GateSettings(), GATE_CHECKS, where)
    guard, guard_by = _table(data, "guard", GuardSettings(), GUARD_CHECKS, where)
    return Policy(gates=gates, guard=guard, gates_by_feature=gates_by, guard_by_feature=guard_by)


def read_policy(path: Path) -> Policy:
    """The policy in a project file; ConfigError if it cannot be read or is wrong."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_policy(data, str(path))


def policy_for(project: str | None) -> Policy:
    """What a worker follows: the project file named (TURNOUT_PROJECT, which `turnout up`
    sets), else the defaults. Never a turnout.toml that happens to be in the current
    directory: a test or a tool run from a checkout is not that project's worker."""
    if not project:
        return Policy()
    path = Path(project)
    if not path.is_file():
        raise ConfigError(f"TURNOUT_PROJECT: {project} does not exist")
    return read_policy(path)


def _table(data: Mapping[str, Any], name: str, defaults: Any, checks: Mapping[str, Check],
           where: str) -> tuple[Any, dict[str, Any]]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: `{name}` must be a table ([{name}]), got {table!r}")
    general = {key: value for key, value in table.items() if not isinstance(value, dict)}
    base = _settings(defaults, general, checks, name, where)
    by_feature = {feature: _settings(base, overrides, checks, f"{name}.{feature}", where)
                  for feature, overrides in table.items() if isinstance(overrides, dict)}
    return base, by_feature


def _settings(base: Any, values: Mapping[str, Any], checks: Mapping[str, Check], prefix: str,
              where: str) -> Any:
    changes = {}
    for key, value in values.items():
        if key not in checks:
            raise ConfigError(f"{where}: unknown key `{prefix}.{key}`; known keys: "
                              f"{', '.join(checks)}")
        try:
            changes[key] = checks[key](key, value)
        except _Bad as bad:
            raise ConfigError(f"{where}: `{prefix}.{key}` must be {bad.expected}, got "
                              f"{value!r}") from None
    return dataclasses.replace(base, **changes)


class _Bad(Exception):
    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


def _whole(minimum: int) -> Check:
    def check(_key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Bad(f"a whole number of at least {minimum}")
        return value
    return check


def _number(minimum: float, maximum: float = math.inf, *, above: bool = False) -> Check:
    expected = (f"a number above {minimum:g}" if above else
                f"a number from {minimum:g} to {maximum:g}" if maximum < math.inf else
                f"a number of at least {minimum:g}")

    def check(_key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or not minimum <= value <= maximum \
                or (above and value == minimum):
            raise _Bad(expected)
        return float(value)
    return check


def _flag(_key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value


def _steps(_key: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or any(
            isinstance(step, bool) or not isinstance(step, int | float) for step in value):
        raise _Bad(STEPS)
    steps = tuple(float(step) for step in value)
    if not steps[0] > 0 or not steps[-1] <= 100 or any(b <= a for a, b in pairwise(steps)):
        raise _Bad(STEPS)  # NaN fails these comparisons too
    return steps


STEPS = "a list of percentages above 0 and at most 100, each larger than the one before"
RATE = _number(0, 1)
GATE_CHECKS: dict[str, Check] = {
    "window": _whole(1), "min_comparisons": _whole(0), "max_mismatch_rate": RATE,
    "min_calls": _whole(0), "max_error_rate": RATE, "max_p99_ratio": _number(0, above=True),
    "max_mirror_backlog": _whole(0), "max_mirror_lag": _number(0), "canary_steps": _steps,
}
GUARD_CHECKS: dict[str, Check] = {
    "enabled": _flag, "window": _whole(1), "min_calls": _whole(1), "max_error_rate": RATE,
    "max_p99_ms": _number(0), "breaker_open": _flag, "cooldown": _whole(0),
}
