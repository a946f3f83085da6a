"""What the contract tests share: the side under test and data no other test uses."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extracted.dataservice.app import create_app as create_dataservice
from monolith import create_app as create_monolith
from contracts.accounts import Profile, SignUp, UserRecord
from contracts.runs import RunInput
from support import FAST_HASH

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


def dataservice_app(tmp_path: Path):
    """The data service in process, on its own SQLite file under `tmp_path`."""
    return create_dataservice({"TESTING": True, "RUN_DIR": str(tmp_path),
                               "DATASERVICE_DATABASE_URL": f"sqlite:///{tmp_path / 'data.db'}",
                               "PASSWORD_HASH_METHOD": FAST_HASH})


def monolith_app(tmp_path: Path):
    """The monolith in process, serving its routed contracts at `/rpc`; flags read fresh."""
    return create_monolith({"TESTING": True, "RUN_DIR": str(tmp_path),
                            "DATABASE_URL": f"sqlite:///{tmp_path / 'monolith.db'}",
                            "SECRET_KEY": "test-secret", "PASSWORD_HASH_METHOD": FAST_HASH,
                            "FLAGS_REFRESH": 0.0})


@contextmanager
def in_process_side(name: str, tmp_path: Path, local_side: Callable[[Path], Any],
                    wsgi_side: Callable[[str, Any], Any]) -> Iterator[Any]:
    """The `local`, `wsgi-dataservice` or `wsgi-monolith` side of a service's contract suite,
    its databases disposed of afterwards. `wsgi_side(name, data_app)` builds the side over
    the app that serves the data contracts."""
    if name == "local":
        side = local_side(tmp_path)
    else:
        app, engine_key = ((dataservice_app(tmp_path), "turnout_engine")
                           if name == "wsgi-dataservice"
                           else (monolith_app(tmp_path), "runnerly_engine"))
        side = wsgi_side(name, app)
        side.cleanups.append(app.extensions[engine_key].dispose)
    try:
        yield side
    finally:
        for cleanup in side.cleanups:
            cleanup()


def unique_email(prefix: str = "runner") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def run_input(day: int = 1, *, month: int = 5, year: int = 2026, hour: int = 7,
              **changes: Any) -> RunInput:
    values = {"name": "Morning run", "distance": 5000.0,
              "start_date": dt.datetime(year, month, day, hour), "elapsed_time": 1500,
              **changes}
    return RunInput(**values)
