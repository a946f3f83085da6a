"""A small client for the part of Strava's API Runnerly uses: the athlete's activities.

The base URL is configuration, so the same code talks to the real Strava or to
the development server in `stravadev/`. Failures become `UpstreamError` with a
message a runner can act on; the raw exception is chained for the logs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from shims.errors import UpstreamError

PAGE_SIZE = 100
MAX_PAGES = 20  # 2000 activities per import: a bound, so a looping upstream cannot hang us


class StravaClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0,
                 session: requests.Session | None = None):
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = session or requests.Session()

    def activities(self, token: str, after: dt.datetime) -> list[dict[str, Any]]:
        after_epoch = int(after.replace(tzinfo=dt.timezone.utc).timestamp())
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            batch = self._page(token, after_epoch, page)
            found.extend(batch)
            if len(batch) < PAGE_SIZE:
                break
        return found

    def _page(self, token: str, after_epoch: int, page: int) -> list[dict[str, Any]]:
        url = f"{self._base_url}/api/v3/athlete/activities"
        try:
            response = self._http.get(url, params={"after": after_epoch, "page": page,
                                                   "per_page": PAGE_SIZE},
                                      headers={"Authorization": f"Bearer {token}"},
                                      timeout=self._timeout)
        except requests.RequestException as exc:
            raise UpstreamError(f"Strava could not be reached at {self._base_url}") from exc
        if response.status_code == 401:
            raise UpstreamError("Strava refused the linked token; link Strava again")
        if response.status_code != 200:
            raise UpstreamError(f"Strava answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError("Strava answered something that is not JSON") from exc
        if not isinstance(body, list):
            raise UpstreamError("Strava answered JSON that is not a list of activities")
        return [item for item in body if isinstance(item, dict)]
