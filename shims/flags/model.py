"""What a flag says, and which values are allowed.

The modes follow LaunchDarkly's migration stages, named for what a team does:

| mode      | reads answered by        | shadow read | writes: authoritative → mirrored |
|-----------|--------------------------|-------------|----------------------------------|
| local     | local                    | —           | local                            |
| dualwrite | local                    | —           | local → remote                   |
| shadow    | local                    | remote      | local → remote                   |
| canary N  | the actor's side (N% remote, sticky) | — | actor's side → the other      |
| live      | remote                   | local       | remote → local                   |
| rampdown  | remote                   | —           | remote → local                   |
| remote    | remote                   | —           | remote                           |

Mirrored writes only happen for features whose two sides keep separate data
(`FeatureInfo.owns_data`); a stateless feature writes on its authoritative side only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from shims.errors import ValidationError

MODES = ("local", "dualwrite", "shadow", "canary", "live", "rampdown", "remote")
REMOTE_MODES = frozenset(MODES) - {"local"}


class FlagError(ValidationError):
    """A flag value was refused; the message says which part and what is allowed."""

    code = "invalid_flag"


@dataclass(frozen=True)
class FeatureInfo:
    """A feature the flags may route: whether a remote side exists and whether it owns data."""

    name: str
    has_remote: bool = True
    owns_data: bool = False


@dataclass(frozen=True)
class Flag:
    feature: str
    mode: str = "local"
    percent: float = 0.0


@dataclass(frozen=True)
class FlagSnapshot:
    version: int = 0
    killed: bool = False
    flags: Mapping[str, Flag] = field(default_factory=dict)
    # (feature, what is wrong) for rows that could not be trusted; the cache keeps
    # serving those features' last good value.
    problems: tuple[tuple[str, str], ...] = ()

    def flag(self, feature: str) -> Flag:
        return self.flags.get(feature) or Flag(feature)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    feature: str
    old: str
    new: str


def validate_flag(features: Mapping[str, FeatureInfo], feature: str, mode: str,
                  percent: object = None) -> Flag:
    """A Flag from user input, or FlagError naming the wrong part."""
    info = features.get(feature)
    if info is None:
        known = ", ".join(sorted(features)) or "none"
        raise FlagError(f"unknown feature {feature!r}; known features: {known}", field="feature")
    if mode not in MODES:
        raise FlagError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}", field="mode")
    if mode in REMOTE_MODES and not info.has_remote:
        raise FlagError(f"feature {feature!r} has no remote implementation yet; only 'local'",
                        field="mode")
    value = _percent(percent)
    if mode == "canary" and value is None:
        raise FlagError("mode 'canary' needs a percentage from 0 to 100 (--percent N)",
                        field="percent")
    if mode != "canary" and value not in (None, 0.0):
        raise FlagError(f"a percentage only applies to mode 'canary', not {mode!r}",
                        field="percent")
    return Flag(feature=feature, mode=mode, percent=value or 0.0)


def _percent(raw: object) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise FlagError("percent must be a number from 0 to 100", field="percent")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FlagError(f"percent must be a number from 0 to 100, got {raw!r}",
                        field="percent") from None
    if not 0 <= value <= 100:  # also refuses NaN
        raise FlagError(f"percent must be from 0 to 100, got {value:g}", field="percent")
    return value


def describe_flag(flag: Flag) -> str:
    return f"canary {flag.percent:g}%" if flag.mode == "canary" else flag.mode


def parse_described(feature: str, text: str) -> Flag | None:
    """The flag `describe_flag` wrote (as the audit log keeps it); None for anything else
    (the kill switch's and the guard's entries)."""
    mode, _, rest = text.partition(" ")
    if mode not in MODES or (rest and mode != "canary"):
        return None
    if mode != "canary":
        return Flag(feature, mode)
    try:
        return Flag(feature, mode, float(rest.rstrip("%")))
    except ValueError:
        return None
