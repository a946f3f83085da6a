"""Runnerly's feature registry: what the kit's composition root (shims/extension.py) builds.

Views reach features only through `features()`, typed by the contracts. A feature with an
extracted service is a `Router` over its `Local<Feature>` and `Remote<Feature>`; the
router reads the feature's flag on every call. Features that depend on another feature
(the Strava importer and the reports need users and runs) are given the *routed*
contract, so they follow its flag too: the registry builds them after it.

`runs` is the data feature (users and runs), extracted to the data service, which keeps
its own database; the Strava importer and the reports service keep none (they reach users
and runs through the data contracts). Races have no service yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from contracts.accounts import ACCOUNTS, Accounts, RemoteAccounts
from contracts.races import RACES, Races
from contracts.reports import REPORTS, RemoteReports, Reports
from contracts.runs import RUNS, RemoteRuns, Runs
from contracts.strava import STRAVA, RemoteStravaImport, StravaImport
from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema
from monolith.races.service import LocalRaces
from monolith.reports.service import LocalReports
from monolith.runs.service import LocalRuns
from monolith.runs.sync import LocalRunsSync, RunsMirror
from monolith.strava.client import StravaClient
from monolith.strava.service import LocalStravaImport
from shims.control import Control
from shims.extension import Routed, state
from shims.outcomes import Keyed
from shims.registry import Binding, DataPath, Feature, Registry, Resources
from shims.transport import pooled_session

# The app passes these through `init_app(extras=...)`: the sessions every local side
# writes with (outbox-tracked, joinable by keyed writes), and the keyed outcomes store.
SESSIONS, OUTCOMES = "sessions", "outcomes"


def _keyed(implementation: Any, spec, resources: Resources) -> Keyed:
    """Keyed local writes commit their outcome with their rows (shims/outcomes.py)."""
    return Keyed(implementation, spec, resources.extras[OUTCOMES])


def _accounts(r: Resources) -> Keyed:
    sessions = r.extras[SESSIONS]
    return _keyed(LocalAccounts(sessions, hash_method=r.settings["PASSWORD_HASH_METHOD"]),
                  ACCOUNTS, r)


def _strava(r: Resources) -> LocalStravaImport:
    client = StravaClient(r.settings["STRAVA_URL"], timeout=r.settings["STRAVA_TIMEOUT"],
                          session=pooled_session(r.settings["REMOTE_POOL_SIZE"]))
    return LocalStravaImport(r.routed.accounts, r.routed.runs, client,
                             days=r.settings["STRAVA_IMPORT_DAYS"])


def _runs_sync(engine) -> LocalRunsSync:
    """The `turnout` command may reach the database before the app ever ran on it: the
    tables first (a no-op once they are there)."""
    create_schema(engine)
    return LocalRunsSync(engine)


def _dataservice_sync(settings) -> LocalRunsSync:
    """The data service's own database, reached directly, so `turnout flags set` and
    `turnout data` work while its processes are down."""
    from extracted.dataservice.app import database_sync  # it imports the monolith's models

    return database_sync(settings)


REGISTRY = Registry([
    Feature("runs", service="dataservice", url="http://127.0.0.1:5010",
            bindings=[Binding(ACCOUNTS, local=_accounts, remote=RemoteAccounts),
                      Binding(RUNS, local=lambda r: _keyed(LocalRuns(r.extras[SESSIONS]),
                                                            RUNS, r),
                              remote=RemoteRuns)],
            data=DataPath(local_sync=_runs_sync, mirror=RunsMirror(),
                          tables={"users": "user", "runs": "run"},
                          service_sync=_dataservice_sync)),
    Feature("strava", service="stravaimport", url="http://127.0.0.1:5030",
            bindings=[Binding(STRAVA, local=_strava, remote=RemoteStravaImport)]),
    Feature("reports", service="reports", url="http://127.0.0.1:5040",
            bindings=[Binding(REPORTS, local=lambda r: LocalReports(r.routed.runs),
                              remote=RemoteReports)]),
    Feature("races", bindings=[Binding(RACES, local=lambda r: _keyed(
        LocalRaces(r.extras[SESSIONS]), RACES, r))]),
])
FEATURES = REGISTRY.infos()
FEATURES_KEY = "runnerly"  # app.extensions: the typed Features the views use


@dataclass(frozen=True)
class Features:
    accounts: Accounts
    runs: Runs
    strava: StravaImport
    reports: Reports
    races: Races


def typed(routed: Routed) -> Features:
    return Features(accounts=routed.accounts, runs=routed.runs, strava=routed.strava,
                    reports=routed.reports, races=routed.races)


def features() -> Features:
    return current_app.extensions[FEATURES_KEY]


def control() -> Control:
    return state().control
