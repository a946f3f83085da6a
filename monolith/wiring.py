"""The composition root: the one place that decides which implementation answers each contract.

Views reach features only through `features()`, typed by the contracts. A
feature with an extracted service is a `Router` over its `Local<Feature>` and
`Remote<Feature>`; the router reads the feature's flag on every call. Features
that depend on another feature (the Strava importer and the reports need users
and runs) are given the *routed* contract, so they follow its flag too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from monolith.accounts.service import LocalAccounts
from monolith.races.service import LocalRaces
from monolith.reports.service import LocalReports
from monolith.runs.service import LocalRuns
from monolith.runs.sync import LocalRunsSync, RunsMirror
from monolith.strava.client import StravaClient
from monolith.strava.service import LocalStravaImport
from shims.breaker import CircuitBreaker
from shims.contracts.accounts import ACCOUNTS, Accounts, RemoteAccounts
from shims.contracts.races import Races
from shims.contracts.reports import Reports
from shims.contracts.runs import RUNS, RemoteRuns, Runs
from shims.contracts.strava import StravaImport
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo
from shims.flags.store import SqlFlagStore
from shims.metrics import TurnoutMetrics
from shims.mismatches import SqlMismatchLog
from shims.router import Router, Sides, make_breaker
from shims.shadow import ShadowRunner
from shims.sync import RemoteDataSync
from shims.transport import HttpTransport

EXTENSION_KEY = "runnerly"
CONTROL_KEY = "turnout"

# Every feature the flags can route. `runs` is the data feature (users and runs),
# extracted to the data service, which keeps its own database.
FEATURES = {
    "runs": FeatureInfo("runs", has_remote=True, owns_data=True),
    "strava": FeatureInfo("strava", has_remote=False),
    "reports": FeatureInfo("reports", has_remote=False),
    "races": FeatureInfo("races", has_remote=False),
}


@dataclass(frozen=True)
class Features:
    accounts: Accounts
    runs: Runs
    strava: StravaImport
    reports: Reports
    races: Races


@dataclass(frozen=True)
class Control:
    """This process's side of Turnout: flags, breakers, metrics, mismatches."""

    store: SqlFlagStore
    flags: FlagCache
    metrics: TurnoutMetrics
    breakers: dict[str, CircuitBreaker]
    mismatches: SqlMismatchLog


def build_control(config: dict[str, Any]) -> Control:
    store = SqlFlagStore.from_url(config["FLAGS_URL"], FEATURES)
    store.create_schema()
    mismatches = SqlMismatchLog(store.engine)
    mismatches.create_schema()
    metrics = TurnoutMetrics()
    breakers = {name: make_breaker(name, metrics, failure_threshold=config["BREAKER_FAILURES"],
                                   reset_timeout=config["BREAKER_RESET_SECONDS"])
                for name, info in FEATURES.items() if info.has_remote}
    return Control(store=store, flags=FlagCache(store, refresh_interval=config["FLAGS_REFRESH"]),
                   metrics=metrics, breakers=breakers, mismatches=mismatches)


def serving_flags(control: Control) -> dict[str, Any]:
    """The flags this worker serves right now, for /healthz (and the multi-worker tests)."""
    snapshot = control.flags.snapshot()
    return {"flags": {"version": snapshot.version, "killed": snapshot.killed,
                      "modes": {name: snapshot.flag(name).mode for name in FEATURES},
                      "store_readable": control.flags.healthy}}


def build_features(config: dict[str, Any], sessions: sessionmaker, engine: Engine,
                   control: Control) -> Features:
    accounts, runs = _data_feature(config, sessions, engine, control)
    strava_client = StravaClient(config["STRAVA_URL"], timeout=config["STRAVA_TIMEOUT"],
                                 session=requests.Session())
    return Features(
        accounts=accounts,
        runs=runs,
        strava=LocalStravaImport(accounts, runs, strava_client, days=config["STRAVA_IMPORT_DAYS"]),
        reports=LocalReports(runs),
        races=LocalRaces(sessions),
    )


def _data_feature(config: dict[str, Any], sessions: sessionmaker, engine: Engine,
                  control: Control) -> tuple[Accounts, Runs]:
    """Users and runs: local code on the monolith's database, or the data service."""
    feature = FEATURES["runs"]
    transport = HttpTransport(config["DATASERVICE_URL"],
                              connect_timeout=config["REMOTE_CONNECT_TIMEOUT"],
                              read_timeout=config["REMOTE_READ_TIMEOUT"],
                              pool_size=config["REMOTE_POOL_SIZE"])
    ignore = frozenset(name.strip() for name in config["SHADOW_IGNORE"].split(",") if name.strip())
    shadow = ShadowRunner(feature.name, control.metrics, control.mismatches,
                          timeout=config["SHADOW_TIMEOUT"],
                          max_in_flight=config["SHADOW_MAX_IN_FLIGHT"], ignore=ignore)
    shared = {"flags": control.flags, "breaker": control.breakers[feature.name],
              "metrics": control.metrics, "shadow": shadow, "mirror": RunsMirror()}
    syncs = {"local_sync": LocalRunsSync(engine), "remote_sync": RemoteDataSync(transport)}
    accounts = Router(feature, ACCOUNTS, Sides(
        local=LocalAccounts(sessions, hash_method=config["PASSWORD_HASH_METHOD"]),
        remote=RemoteAccounts(transport), **syncs), **shared)
    runs = Router(feature, RUNS, Sides(local=LocalRuns(sessions), remote=RemoteRuns(transport),
                                       **syncs), **shared)
    return accounts, runs  # type: ignore[return-value]  # routers implement the contracts


def features() -> Features:
    return current_app.extensions[EXTENSION_KEY]


def control() -> Control:
    return current_app.extensions[CONTROL_KEY]
