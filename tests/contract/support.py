"""What the contract tests share: the side under test and data no other test uses."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from shims.contracts.accounts import Profile, SignUp, UserRecord
from shims.contracts.runs import RunInput

FAST_HASH = "pbkdf2:sha256:1000"  # real hashing, cheap enough for many sign-ups
PASSWORD = "correct-horse-9"
RACERS = 8  # calls a test may have in flight at once


@dataclass
class Side:
    """One implementation of the Accounts, Runs and DataSync contracts."""

    name: str
    accounts: Any
    runs: Any
    sync: Any

    def user(self, *, admin: bool = False, password: str = PASSWORD, **profile: Any) -> UserRecord:
        """A new runner with an email no other test uses."""
        return self.accounts.sign_up(SignUp(email=unique_email(), password=password,
                                            profile=Profile(**profile)), is_admin=admin)


def unique_email(prefix: str = "runner") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def run_input(day: int = 1, *, month: int = 5, year: int = 2026, hour: int = 7,
              **changes: Any) -> RunInput:
    values = {"name": "Morning run", "distance": 5000.0,
              "start_date": dt.datetime(year, month, day, hour), "elapsed_time": 1500,
              **changes}
    return RunInput(**values)
