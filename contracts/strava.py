"""Strava import: pull each linked runner's recent activities, keep new runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
    def import_user(self, user_id: Id) -> ImportResult: ...
    @write
    def import_all(self) -> list[ImportResult]: ...


STRAVA = describe(StravaImport, "strava")


class RemoteStravaImport(RemoteClient):
    """The strava contract over HTTP (or in-process WSGI), for an extracted service."""

    spec = STRAVA
