"""Settings for any Turnout app: defaults, then `TURNOUT_*` environment variables, then an override.

Each default's type is the setting's type (a None default means text), so an
environment value that does not fit stops start-up with a message naming the
variable, never a traceback later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

ENV_PREFIX = "TURNOUT_"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names it."""


def load_settings(defaults: Mapping[str, Any], override: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None, *,
                  prefix: str = ENV_PREFIX, positive: Iterable[str] = ()) -> dict[str, Any]:
    """`positive` names settings for which zero means nothing sensible (a deadline, a
    count of attempts): refused, like a malformed value, naming the variable."""
    environ = os.environ if environ is None else environ
    settings = dict(defaults)
    for key, default in defaults.items():
        raw = environ.get(prefix + key)
        if raw is not None and raw != "":
            settings[key] = coerce(prefix + key, raw, type(default) if default is not None
                                   else str)
    settings.update(override or {})
    for key in positive:
        if not settings[key] > 0:
            raise ConfigError(f"{prefix}{key} must be greater than 0, got {settings[key]!r}")
    return settings


def coerce(variable: str, raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise ConfigError(f"{variable} must be true or false, got {raw!r}")
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{variable} must be {kind.__name__}, got {raw!r}") from None
    if kind is float and not math.isfinite(value):  # float() accepts "nan" and "inf"
        raise ConfigError(f"{variable} must be a finite number, got {raw!r}")
    if kind in (int, float) and value < 0:
        raise ConfigError(f"{variable} must not be negative, got {raw!r}")
    return value
