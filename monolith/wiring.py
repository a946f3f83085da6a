"""The composition root: the one place that decides which implementation answers each contract.

Views reach features only through `features()`, typed by the contracts, so
swapping a local implementation for a routed or remote one changes this
module and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app
from sqlalchemy.orm import sessionmaker

from monolith.accounts.service import LocalAccounts
from monolith.races.service import LocalRaces
from monolith.reports.service import LocalReports
from monolith.runs.service import LocalRuns
from monolith.strava.client import StravaClient
from monolith.strava.service import LocalStravaImport
from shims.contracts.accounts import Accounts
from shims.contracts.races import Races
from shims.contracts.reports import Reports
from shims.contracts.runs import Runs
from shims.contracts.strava import StravaImport

EXTENSION_KEY = "runnerly"


@dataclass(frozen=True)
class Features:
    accounts: Accounts
    runs: Runs
    strava: StravaImport
    reports: Reports
    races: Races


def build_features(config: dict[str, Any], sessions: sessionmaker) -> Features:
    accounts = LocalAccounts(sessions, hash_method=config["PASSWORD_HASH_METHOD"])
    runs = LocalRuns(sessions)
    strava_client = StravaClient(config["STRAVA_URL"], timeout=config["STRAVA_TIMEOUT"],
                                 session=requests.Session())
    return Features(
        accounts=accounts,
        runs=runs,
        strava=LocalStravaImport(accounts, runs, strava_client, days=config["STRAVA_IMPORT_DAYS"]),
        reports=LocalReports(runs),
        races=LocalRaces(sessions),
    )


def features() -> Features:
    return current_app.extensions[EXTENSION_KEY]
