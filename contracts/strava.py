"""Strava: link a runner's token once Strava accepts it; pull each linked runner's recent
activities, keep new runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from contracts.accounts import StravaToken, UserRecord
from shims.contract import describe, write
from shims.ids import Id
from shims.remote import RemoteClient


@dataclass(frozen=True)
class ImportResult:
    user_id: Id
    fetched: int  # activities Strava returned
    created: int  # new runs stored
    skipped: int  # runs already imported before (same Strava id)
    ignored: int = 0  # activities that are not runs, or are malformed
    error: str | None = None


class StravaImport(Protocol):
    @write
    def link(self, user_id: Id, token: StravaToken) -> UserRecord:
        """Strava is asked once whether it knows the token; only then is it stored. Refused:
        Unprocessable (422); Strava unreachable: UpstreamUnavailable (503), nothing stored."""
    @write
    def import_user(self, user_id: Id) -> ImportResult: ...
    @write
    def import_all(self) -> list[ImportResult]: ...


STRAVA = describe(StravaImport, "strava")


class RemoteStravaImport(RemoteClient):
    """The strava contract over HTTP (or in-process WSGI), for an extracted service."""

    spec = STRAVA
