"""A small client for the part of Strava's API Runnerly uses: the athlete behind a token
(checked when a runner links it) and the athlete's activities.

The base URL is configuration, so the same code talks to the real Strava or to
the development server in `stravadev/`. Failures become `UpstreamError` with a
message a runner can act on; the raw exception is chained for the logs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from shims.errors import ContractError, Unprocessable, UpstreamError, UpstreamUnavailable

PAGE_SIZE = 100
MAX_PAGES = 20  # 2000 activities per import: a bound, so a looping upstream cannot hang us


class StravaClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0,
                 session: requests.Session | None = None):
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = session or requests.Session()

    def athlete(self, token: str) -> dict[str, Any]:
        """The athlete `token` belongs to: proof that Strava accepts it."""
        try:
            response = self._get("/api/v3/athlete", token)
        except requests.RequestException as exc:
            raise _not_checked(f"Strava could not be reached at {self._base_url} to check "
                               "the token") from exc
        if response.status_code != 200:
            raise _token_check_failed(response.status_code)
        return _json(response, dict, "an athlete")

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
        try:
            response = self._get("/api/v3/athlete/activities", token,
                                 {"after": after_epoch, "page": page, "per_page": PAGE_SIZE})
        except requests.RequestException as exc:
            raise UpstreamError(f"Strava could not be reached at {self._base_url}") from exc
        if response.status_code == 401:
            raise UpstreamError("Strava refused the linked token; link Strava again")
        if response.status_code != 200:
            raise UpstreamError(f"Strava answered HTTP {response.status_code}")
        body = _json(response, list, "a list of activities")
        return [item for item in body if isinstance(item, dict)]

    def _get(self, path: str, token: str,
             params: dict[str, Any] | None = None) -> requests.Response:
        return self._http.get(f"{self._base_url}{path}", params=params,
                              headers={"Authorization": f"Bearer {token}"},
                              timeout=self._timeout)


def _token_check_failed(status: int) -> ContractError:
    """A refused token is the runner's to fix (422); a Strava failing with 5xx may well
    answer later (503); anything else is Strava failing (502)."""
    if status == 401:
        return Unprocessable("strava_token was refused by Strava: copy your access token from "
                             "Strava again", field="strava_token")
    if status >= 500:
        return _not_checked(f"Strava answered HTTP {status} to the token check")
    return UpstreamError(f"Strava answered HTTP {status} to the token check")


def _not_checked(reason: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"{reason}; nothing was linked, try again later",
                               field="strava_token")


def _json(response: requests.Response, kind: type, what: str) -> Any:
    """The body, when it is the JSON `kind` expected; else Strava failed (502)."""
    try:
        body = response.json()
    except ValueError as exc:
        raise UpstreamError("Strava answered something that is not JSON") from exc
    if not isinstance(body, kind):
        raise UpstreamError(f"Strava answered JSON that is not {what}")
    return body
