"""LocalStravaImport: the importer, written against the Accounts and Runs contracts.

It never touches a table: linked users come from Accounts and new runs go
through Runs.import_runs, so the importer works unchanged whichever side
(local or an extracted data service) answers those contracts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from monolith.strava.client import StravaClient
from contracts.accounts import Accounts, UserRecord
from contracts.runs import RunInput, Runs
from contracts.strava import ImportResult
from shims import fields
from shims.errors import ContractError, ValidationError

log = logging.getLogger(__name__)


def activity_to_run(activity: dict[str, Any]) -> RunInput | None:
    """A Strava activity as a run, or None when it is not a run or is malformed."""
    if activity.get("type") != "Run" and activity.get("sport_type") != "Run":
        return None
    if activity.get("id") is None:
        # Without its Strava id a run cannot be de-duplicated: every import would add it again.
        log.warning("skipping a Strava activity without an id")
        return None
    try:
        return RunInput.parse({
            "name": activity.get("name") or "Strava run",
            "distance": activity.get("distance"),
            "start_date": activity.get("start_date"),
            "elapsed_time": activity.get("elapsed_time"),
            "average_heartrate": activity.get("average_heartrate"),
            "total_elevation_gain": activity.get("total_elevation_gain"),
            "strava_id": activity.get("id"),
        }, allow_strava_id=True)
    except ValidationError as exc:
        log.warning("skipping malformed Strava activity %r: %s", activity.get("id"), exc.message)
        return None


class LocalStravaImport:
    def __init__(self, accounts: Accounts, runs: Runs, client: StravaClient, *,
                 days: int = 90, clock: Callable[[], dt.datetime] | None = None):
        self._accounts = accounts
        self._runs = runs
        self._client = client
        self._days = days
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))

    def link(self, user_id: int, token: str) -> UserRecord:
        """A wrong token is refused now, when the runner can fix it, not at the next import."""
        token = fields.text({"strava_token": token}, "strava_token", max_length=200)
        self._accounts.get_user(user_id)  # an unknown runner is a 404 before Strava is asked
        self._client.athlete(token)
        return self._accounts.link_strava(user_id, token)

    def import_user(self, user_id: int) -> ImportResult:
        token = self._accounts.strava_link(user_id).token
        after = self._clock() - dt.timedelta(days=self._days)
        activities = self._client.activities(token, after)
        runs = [run for run in map(activity_to_run, activities) if run is not None]
        count = self._runs.import_runs(user_id, runs)
        return ImportResult(user_id=user_id, fetched=len(activities), created=count.created,
                            skipped=count.skipped, ignored=len(activities) - len(runs))

    def import_all(self) -> list[ImportResult]:
        """Every linked runner; one runner's failure does not stop the others.

        Besides Strava failing (UpstreamError), a runner may unlink Strava or be deleted
        between the listing and their import (NotFound); both are that runner's result.
        """
        results = []
        for link in self._accounts.strava_links():
            try:
                results.append(self.import_user(link.user_id))
            except ContractError as exc:
                results.append(ImportResult(user_id=link.user_id, fetched=0, created=0,
                                            skipped=0, error=exc.message))
        return results
