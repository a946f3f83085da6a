"""The evidence's process settings (`TURNOUT_EVIDENCE_*`), checked together: each bucket
is flushed at least once before it ends, and the table keeps every window asked for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shims.settings import ConfigError

DEFAULTS: dict[str, Any] = {
    # None: the flag store's database, or beside a SQLite one `flags-evidence.db`
    "EVIDENCE_URL": None,
    "EVIDENCE_BUCKET_SECONDS": 10,  # the time buckets every worker counts in
    "EVIDENCE_FLUSH_SECONDS": 5.0,  # how often a worker adds its counts to the shared table
    "EVIDENCE_KEEP_SECONDS": 3600,  # buckets older than this are dropped
    "EVIDENCE_WINDOWS": "60,900",  # the windows GET /_turnout/evidence reports by default
}
POSITIVE = ("EVIDENCE_BUCKET_SECONDS", "EVIDENCE_FLUSH_SECONDS", "EVIDENCE_KEEP_SECONDS")


@dataclass(frozen=True)
class EvidenceConfig:
    bucket_seconds: int = 10
    flush_seconds: float = 5.0
    keep_seconds: int = 3600
    windows: tuple[int, ...] = (60, 900)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> EvidenceConfig:
        def setting(name: str) -> Any:  # an app's own settings may predate these
            return settings.get(name, DEFAULTS[name])

        config = cls(bucket_seconds=setting("EVIDENCE_BUCKET_SECONDS"),
                     flush_seconds=setting("EVIDENCE_FLUSH_SECONDS"),
                     keep_seconds=setting("EVIDENCE_KEEP_SECONDS"),
                     windows=parse_windows(setting("EVIDENCE_WINDOWS"),
                                           "TURNOUT_EVIDENCE_WINDOWS"))
        if config.flush_seconds > config.bucket_seconds:
            raise ConfigError(f"TURNOUT_EVIDENCE_FLUSH_SECONDS ({config.flush_seconds:g}) must "
                              f"not exceed TURNOUT_EVIDENCE_BUCKET_SECONDS "
                              f"({config.bucket_seconds}): every bucket needs a flush")
        too_long = [w for w in config.windows if w > config.keep_seconds]
        if too_long:
            raise ConfigError(f"TURNOUT_EVIDENCE_WINDOWS asks for {too_long[0]}s, more than "
                              f"TURNOUT_EVIDENCE_KEEP_SECONDS ({config.keep_seconds}) keeps")
        return config


def parse_windows(raw: Any, name: str) -> tuple[int, ...]:
    """"60,900" (seconds) -> (60, 900); ConfigError naming `name` otherwise."""
    parts = [part.strip() for part in str(raw).split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise ConfigError(f"{name} must be window lengths in whole seconds, comma-separated "
                          f"(e.g. 60,900), got {raw!r}")
    return tuple(int(part) for part in parts)
