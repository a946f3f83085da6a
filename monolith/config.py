"""Configuration: defaults, then `TURNOUT_*` environment variables, then the caller's override.

Environment values arrive as strings; each key declares its type so a bad value
fails at start-up with a message naming the variable, not later with a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monolith.accounts import throttle
from shims.defaults import kit_settings
from shims.settings import ENV_PREFIX, ConfigError

__all__ = ["ENV_PREFIX", "ConfigError", "load_config", "read_or_create_secret"]


# Runnerly's own settings; the kit's (flags, breakers, shadow, remote calls, tokens,
# deadlines) come from shims/defaults.py, with the services' URLs from the registry.
DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # None: sqlite file monolith.db in RUN_DIR
    # None: read or create RUN_DIR/secret_key, shared by every worker (no secret in code)
    "SECRET_KEY": None,  # nosec B105
    "STRAVA_URL": "http://127.0.0.1:5090",
    "STRAVA_TIMEOUT": 5.0,
    "STRAVA_IMPORT_DAYS": 90,
    "DB_POOL_SIZE": 10,
    "DB_MAX_OVERFLOW": 20,
    "DB_POOL_TIMEOUT": 10.0,
    # A hash algorithm name, not a secret.
    "PASSWORD_HASH_METHOD": "scrypt",  # nosec B105
    # Lifetimes in seconds. One token lives API_TOKEN_MAX_AGE; renewing it with itself
    # gives a new one on the same login, which ends API_TOKEN_MAX_LIFETIME after the
    # password was given. A browser login ends SESSION_MAX_LIFETIME after it began.
    "API_TOKEN_MAX_AGE": 86400,  # nosec B105
    "API_TOKEN_MAX_LIFETIME": 7 * 86400,  # nosec B105
    "SESSION_MAX_LIFETIME": 7 * 86400,
    # Cookies: never sent on cross-site subrequests or posts; `Secure` whenever the request
    # came over TLS, and always when this says the site is served over TLS (behind a proxy).
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    **throttle.DEFAULTS,
    "WTF_CSRF_ENABLED": True,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "TESTING": False,
    "SHADOW_IGNORE": "created_at",  # fields allowed to differ between the two sides
}


def load_config(override: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    from monolith.wiring import REGISTRY

    config = kit_settings(REGISTRY, override, environ, app_defaults=DEFAULTS)
    run_dir = Path(config["RUN_DIR"])
    config["RUN_DIR"] = str(run_dir)
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{run_dir.resolve() / 'monolith.db'}"
    return config


def read_or_create_secret(run_dir: str) -> str:
    """One secret for every worker: created once, atomically, then read by all.

    The secret is written to a private temporary file first and then hard-linked into
    place, so `secret_key` never exists half-written: a worker starting at the same moment
    either finds the finished file or wins the link itself (link fails if the name exists).
    """
    import secrets
    import tempfile

    path = Path(run_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        value = secrets.token_hex(32)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(value)
            os.link(temporary, path)
            return value
        except FileExistsError:
            pass  # another worker finished first: use its secret
        finally:
            os.unlink(temporary)
    value = path.read_text().strip()
    if not value:
        raise ConfigError(f"{path} is empty; delete it or set {ENV_PREFIX}SECRET_KEY")
    return value
