"""The data service's app factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.engine import Engine

from monolith.accounts.service import LocalAccounts
from monolith.models import Base, Run, User
from monolith.runs.service import LocalRuns
from monolith.runs.sync import RUNS_OUTBOX, LocalRunsSync
from shims import deadline, outbox, outcomes
from shims.auth import AUTH_DEFAULTS
from contracts.accounts import ACCOUNTS
from contracts.runs import RUNS
from shims.outcomes import Keyed, OutcomeStore
from shims.service import Guard
from shims.service_app import service_app
from shims.settings import load_settings
from shims.sql import create_tables, make_engine
from shims.sync import SYNC
from shims.transactions import joinable_sessions

SERVICE = "dataservice"
DEFAULTS: dict[str, Any] = {
    "RUN_DIR": "run",
    "DATASERVICE_DATABASE_URL": None,  # None: sqlite file dataservice.db in RUN_DIR
    "DB_POOL_SIZE": 10,
    "DB_MAX_OVERFLOW": 20,
    "DB_POOL_TIMEOUT": 10.0,
    # A hash algorithm name, not a secret.
    "PASSWORD_HASH_METHOD": "scrypt",  # nosec B105
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,  # a runner's whole history can travel in one sync
    **AUTH_DEFAULTS,
    **deadline.DEFAULTS,
    **outcomes.DEFAULTS,
}


def load_config(override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from pathlib import Path

    config = load_settings(DEFAULTS, override,
                           positive=(*deadline.DEFAULTS, *outcomes.DEFAULTS))
    if not config["DATASERVICE_DATABASE_URL"]:
        path = Path(config["RUN_DIR"]).resolve() / "dataservice.db"
        config["DATASERVICE_DATABASE_URL"] = f"sqlite:///{path}"
    return config


def create_schema(engine: Engine) -> None:
    """Only the tables this service owns, and its outbox."""
    create_tables(Base.metadata, engine, [User.__table__, Run.__table__])
    create_tables(outbox.metadata, engine)


def database_sync(settings: Mapping[str, Any]) -> LocalRunsSync:
    """This service's rows on its own database, for the `turnout` command (the registry's
    `DataPath.service_sync`): `settings` are the monolith's, sharing its run directory."""
    config = load_config({"RUN_DIR": settings["RUN_DIR"]})
    engine = make_engine(config["DATASERVICE_DATABASE_URL"], pool_size=2)
    create_schema(engine)
    return LocalRunsSync(engine)


def create_app(config: Mapping[str, Any] | None = None, *, guard: Guard | None = None) -> Flask:
    """Every contract call needs a dealer token for audience "dataservice" (`guard`
    replaces that check only for tests that bring their own)."""
    settings = load_config(config)
    engine = make_engine(settings["DATASERVICE_DATABASE_URL"], pool_size=settings["DB_POOL_SIZE"],
                         max_overflow=settings["DB_MAX_OVERFLOW"],
                         pool_timeout=settings["DB_POOL_TIMEOUT"])
    create_schema(engine)
    store = OutcomeStore(engine, ttl=settings["IDEMPOTENCY_TTL"])
    store.create_schema()
    # Every change this service makes is recorded in its outbox, so the monolith's mirror
    # applier can bring it home (docs/turnout.md §4); a keyed write records its outcome in
    # the same transaction (shims/outcomes.py).
    sessions = RUNS_OUTBOX.track(joinable_sessions(engine))
    # The sync needs no keys: a change is applied only when newer, so twice is once.
    accounts = LocalAccounts(sessions, hash_method=settings["PASSWORD_HASH_METHOD"])
    bindings = [(ACCOUNTS, Keyed(accounts, ACCOUNTS, store)),
                (RUNS, Keyed(LocalRuns(sessions), RUNS, store)), (SYNC, LocalRunsSync(engine))]
    app = service_app(SERVICE, settings, bindings, guard=guard, engine=engine,
                      title="Runnerly data service",
                      description="Users and runs, extracted from the Runnerly monolith. Every "
                                  "operation is one contract method: POST its arguments as "
                                  '{"args": {...}}, get {"result": ...} or a JSON error.')
    app.extensions["turnout_engine"] = engine
    return app
