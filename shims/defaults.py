"""The kit's settings in a monolith: every default, and how an app loads them.

Each is set by a `TURNOUT_<NAME>` environment variable or by the app's override
(shims/settings.py has the rules); `<SERVICE>_URL` comes from the registry, one per
extracted service. docs/operations.md lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shims import deadline, outcomes, remote
from shims.auth import AUTH_DEFAULTS
from shims.evidence import config as evidence_config
from shims.registry import Registry
from shims.settings import load_settings

KIT_DEFAULTS: dict[str, Any] = {
    "RUN_DIR": "run",
    # The project file (turnout.toml) whose [gates] and [guard] tables the workers follow;
    # `turnout up` sets TURNOUT_PROJECT. None: the defaults of shims/gates/config.py.
    "PROJECT": None,
    "FLAGS_URL": None,  # None: sqlite file flags.db in RUN_DIR (shared by every process)
    "FLAGS_REFRESH": 0.25,  # seconds between flag version checks in each worker
    # Service-to-service tokens: with a client secret, every remote call carries a bearer
    # token from the token dealer; the secret comes from the environment, never the code.
    **AUTH_DEFAULTS,
    "CLIENT_ID": "monolith",
    # Whether this app's /rpc asks callers for a dealer token. Off, a team starts without a
    # token dealer; on later, with no code change (docs/adopting.md).
    "SERVICE_TOKENS": True,
    "REMOTE_CONNECT_TIMEOUT": 0.5,
    "REMOTE_READ_TIMEOUT": 5.0,
    "REMOTE_POOL_SIZE": 200,  # connections per service per worker: one per in-flight call
    **remote.DEFAULTS,  # a read's budget, retries included; how often a write is sent
    **deadline.DEFAULTS,  # one time budget per request, for all its remote calls
    **outcomes.DEFAULTS,  # how long a keyed write's outcome is kept and replayed
    "BREAKER_FAILURES": 5,  # consecutive transport failures that open a feature's breaker
    "BREAKER_RESET_SECONDS": 5.0,  # how long it stays open before one trial call
    "SHADOW_TIMEOUT": 2.0,
    "SHADOW_MAX_IN_FLIGHT": 100,
    "SHADOW_IGNORE": "",  # comma-separated fields allowed to differ between the two sides
    "SHADOW_RECHECK_SECONDS": 1.0,  # a mismatch is asked again after this long (0: never)
    **evidence_config.DEFAULTS,  # the per-bucket evidence every worker keeps and flushes
    "GUARD_TICK_SECONDS": 5.0,  # how often the rollback guard looks (its leader only)
    "MIRROR_INTERVAL": 0.1,  # seconds between the mirror applier's looks at the outbox
}

POSITIVE = (*remote.DEFAULTS, *deadline.DEFAULTS, *outcomes.DEFAULTS, *evidence_config.POSITIVE,
            "GUARD_TICK_SECONDS")


def kit_settings(registry: Registry, override: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None, *,
                 app_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The kit's defaults, each service's URL, then the app's own defaults (which may
    replace a kit default), then `TURNOUT_*` variables, then `override`."""
    defaults = {**KIT_DEFAULTS, **registry.settings_defaults(), **(app_defaults or {})}
    settings = load_settings(defaults, override, environ, positive=POSITIVE)
    if not settings["FLAGS_URL"]:
        settings["FLAGS_URL"] = f"sqlite:///{Path(settings['RUN_DIR']).resolve() / 'flags.db'}"
    return settings
