"""Strava import: pull each linked runner's recent activities, keep new runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ImportResult:
    user_id: int
    fetched: int
    created: int
    skipped: int
    error: str | None = None


class StravaImport(Protocol):
    def import_user(self, user_id: int) -> ImportResult: ...
    def import_all(self) -> list[ImportResult]: ...
