"""The composition root: the one place that decides which implementation answers each contract.

Views reach features only through `features()`, typed by the contracts. A
feature with an extracted service is a `Router` over its `Local<Feature>` and
`Remote<Feature>`; the router reads the feature's flag on every call. Features
that depend on another feature (the Strava importer and the reports need users
and runs) are given the *routed* contract, so they follow its flag too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from monolith.accounts.service import LocalAccounts
from monolith.races.service import LocalRaces
from monolith.reports.service import LocalReports
from monolith.runs.service import LocalRuns
from monolith.runs.sync import LocalRunsSync, RunsMirror
from monolith.strava.client import StravaClient
from monolith.strava.service import LocalStravaImport
from shims.auth import client_tokens
from shims.breaker import CircuitBreaker
from contracts.accounts import ACCOUNTS, Accounts, RemoteAccounts
from contracts.races import RACES, Races
from shims.contract import ContractSpec
from contracts.reports import REPORTS, RemoteReports, Reports
from contracts.runs import RUNS, RemoteRuns, Runs
from contracts.strava import STRAVA, RemoteStravaImport, StravaImport
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo
from shims.flags.problems import FlagStoreError
from shims.flags.store import SqlFlagStore
from shims.logs import event
from shims.metrics import TurnoutMetrics
from shims.mirror import Lease, MirrorApplier, mirror_channels
from shims.mismatches import SqlMismatchLog
from shims.mismatches import metadata as mismatch_tables
from shims.outcomes import Keyed, OutcomeStore
from shims.remote import client_options
from shims.router import Router, Sides, make_breaker
from shims.shadow import ShadowRunner
from shims.sync import RemoteDataSync
from shims.transport import HttpTransport, pooled_session, transport_for

EXTENSION_KEY = "runnerly"
CONTROL_KEY = "turnout"
log = logging.getLogger("turnout.flags")

# Every feature the flags can route. `runs` is the data feature (users and runs),
# extracted to the data service, which keeps its own database; the Strava importer and
# the reports service keep none (they reach users and runs through the data contracts).
FEATURES = {
    "runs": FeatureInfo("runs", has_remote=True, owns_data=True),
    "strava": FeatureInfo("strava", has_remote=True),  # the Strava importer service
    "reports": FeatureInfo("reports", has_remote=True),  # the reports service
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
    # One per feature that owns data; started in each server worker (start_appliers).
    appliers: list[MirrorApplier] = field(default_factory=list)


def build_control(config: dict[str, Any]) -> Control:
    store = SqlFlagStore.from_url(config["FLAGS_URL"], FEATURES, companions=(mismatch_tables,))
    mismatches = SqlMismatchLog(store.engine)
    try:
        store.open()
        mismatches.create_schema()
    except (FlagStoreError, SQLAlchemyError) as problem:
        # A worker starting while the store is damaged still serves (every feature local
        # until the store can be read, as the cache does before any read) rather than fail
        # to boot, which would make gunicorn stop the whole app. Its cache says the rest.
        event(log, "flag_store_unreadable", logging.ERROR,
              reason=getattr(problem, "reason", "error"),
              error=getattr(problem, "message", str(problem)), serving_version=None,
              at="start-up")
    metrics = TurnoutMetrics()
    breakers = {name: make_breaker(name, metrics, failure_threshold=config["BREAKER_FAILURES"],
                                   reset_timeout=config["BREAKER_RESET_SECONDS"])
                for name, info in FEATURES.items() if info.has_remote}
    flags = FlagCache(store, refresh_interval=config["FLAGS_REFRESH"], metrics=metrics)
    return Control(store=store, flags=flags, metrics=metrics, breakers=breakers,
                   mismatches=mismatches)


def serving_flags(control: Control) -> dict[str, Any]:
    """The flags this worker serves right now, for /healthz (and the multi-worker tests):
    `version` is what it serves, `store_version` what it last read from the store (older
    after a restore from a backup), `store_problem` what is wrong and what to run."""
    snapshot = control.flags.snapshot()
    health = control.flags.health
    return {"flags": {"version": snapshot.version, "killed": snapshot.killed,
                      "modes": {name: snapshot.flag(name).mode for name in FEATURES},
                      "store_readable": health.readable, "store_problem": health.problem,
                      "store_version": health.store_version}}


def build_features(config: dict[str, Any], sessions: sessionmaker, engine: Engine,
                   control: Control, outcomes: OutcomeStore) -> Features:
    """`outcomes` records each keyed local write with its rows (shims/outcomes.py)."""
    routes = _Routes(config, control)
    accounts, runs = _data_feature(routes, sessions, engine, outcomes)
    strava_client = StravaClient(config["STRAVA_URL"], timeout=config["STRAVA_TIMEOUT"],
                                 session=pooled_session(config["REMOTE_POOL_SIZE"]))
    options = client_options(config)
    strava = routes.router("strava", STRAVA, LocalStravaImport(
        accounts, runs, strava_client, days=config["STRAVA_IMPORT_DAYS"]),
        RemoteStravaImport(routes.transport("STRAVAIMPORT_URL", "stravaimport"), **options))
    reports = routes.router("reports", REPORTS, LocalReports(runs),
                            RemoteReports(routes.transport("REPORTS_URL", "reports"), **options))
    return Features(accounts=accounts, runs=runs, strava=strava, reports=reports,
                    races=Keyed(LocalRaces(sessions), RACES, outcomes))


class _Routes:
    """Builds the transports and routers of one process, all from the same settings."""

    def __init__(self, config: dict[str, Any], control: Control):
        self.config = config
        self.control = control

    def transport(self, url_setting: str, audience: str) -> HttpTransport:
        return transport_for(self.config, self.config[url_setting],
                             client_tokens(self.config, audience))

    def router(self, name: str, spec: ContractSpec, local: Any, remote: Any,
               **data: Any) -> Any:
        c, feature = self.config, FEATURES[name]
        ignore = frozenset(f.strip() for f in c["SHADOW_IGNORE"].split(",") if f.strip())
        shadow = ShadowRunner(name, self.control.metrics, self.control.mismatches,
                              timeout=c["SHADOW_TIMEOUT"], max_in_flight=c["SHADOW_MAX_IN_FLIGHT"],
                              ignore=ignore)
        mirror, channels = data.pop("mirror", None), data.pop("channels", None)
        return Router(feature, spec, Sides(local=local, remote=remote, **data),
                      flags=self.control.flags, breaker=self.control.breakers[name],
                      metrics=self.control.metrics, shadow=shadow, mirror=mirror,
                      channels=channels, silent_for=c["REMOTE_READ_TIMEOUT"])

    def applier(self, name: str, router: Router, engine: Engine) -> None:
        """The feature's mirror applier; its lease lives in the monolith's database, next to
        the outbox it drains."""
        control, metrics = self.control, self.control.metrics

        def report(feature: str, target: str, backlog) -> None:
            metrics.mirror_backlog.labels(feature, target).set(backlog.entries)
            metrics.mirror_lag.labels(feature, target).set(backlog.oldest_seconds)

        lease = Lease(engine, f"mirror:{name}")
        lease.create_schema()

        def stage() -> tuple[str, bool]:
            snapshot = control.flags.snapshot()
            return snapshot.flag(name).mode, snapshot.killed

        control.appliers.append(MirrorApplier(name, router.channels, stage, lease, report=report,
                                              interval=self.config["MIRROR_INTERVAL"]))


def start_appliers(control: Control) -> None:
    """Server workers only (monolith/wsgi.py): tests and CLIs drain when they choose."""
    for applier in control.appliers:
        applier.start()


def _data_feature(routes: _Routes, sessions: sessionmaker, engine: Engine,
                  outcomes: OutcomeStore) -> tuple[Accounts, Runs]:
    """Users and runs: local code on the monolith's database, or the data service; writes
    mirrored between the two databases in the dual-write stages."""
    transport = routes.transport("DATASERVICE_URL", "dataservice")
    options = client_options(routes.config)
    data = {"local_sync": LocalRunsSync(engine), "remote_sync": RemoteDataSync(transport)}
    channels = mirror_channels("runs", data["local_sync"], data["remote_sync"])
    local_accounts = LocalAccounts(sessions, hash_method=routes.config["PASSWORD_HASH_METHOD"])
    accounts = routes.router("runs", ACCOUNTS, Keyed(local_accounts, ACCOUNTS, outcomes),
                             RemoteAccounts(transport, **options), mirror=RunsMirror(),
                             channels=channels, **data)
    runs = routes.router("runs", RUNS, Keyed(LocalRuns(sessions), RUNS, outcomes),
                         RemoteRuns(transport, **options), mirror=RunsMirror(),
                         channels=channels, **data)
    routes.applier("runs", runs, engine)
    return accounts, runs


def features() -> Features:
    return current_app.extensions[EXTENSION_KEY]


def control() -> Control:
    return current_app.extensions[CONTROL_KEY]
