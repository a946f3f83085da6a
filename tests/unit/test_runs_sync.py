"""Runnerly's DataSync over users and runs (monolith/runs/sync.py) under the kit's mirror,
on two real SQLite databases. The mirror itself is the kit's, tested on an app of its own
(tests/kit/test_mirror.py); here, what Runnerly's side of it must get right."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.accounts import Profile, SignUp
from contracts.runs import RunInput
from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_sessions
from monolith.runs.service import LocalRuns
from monolith.runs.sync import LocalRunsSync
from shims.mirror import REMOTE, Channel
from shims.sql import make_engine
from shims.sync import Applied, RowKey
from support import FAST_HASH

WHEN = dt.datetime(2026, 5, 17, 7, 30)


class Side:
    def __init__(self, path):
        self.engine = make_engine(f"sqlite:///{path}", pool_size=2)
        create_schema(self.engine)
        sessions = make_sessions(self.engine)
        self.sync = LocalRunsSync(self.engine)
        self.accounts = LocalAccounts(sessions, hash_method=FAST_HASH)
        self.runs = LocalRuns(sessions)

    def user(self, email):
        return self.accounts.sign_up(SignUp(email=email, password="correct-horse-9",
                                            profile=Profile()))

    def run(self, user, name="Tempo"):
        return self.runs.add_run(user.id, RunInput(name=name, distance=5000.0, start_date=WHEN,
                                                   elapsed_time=1500))


@pytest.fixture
def monolith(tmp_path):
    side = Side(tmp_path / "monolith.db")
    yield side
    side.engine.dispose()


@pytest.fixture
def service(tmp_path):
    side = Side(tmp_path / "service.db")
    yield side
    side.engine.dispose()


def test_a_run_mirrored_before_its_user_brings_the_user(monolith, service):
    """Issue 8: 'FOREIGN KEY constraint failed' when a run was mirrored before its user."""
    ada = monolith.user("ada@example.com")
    run = monolith.run(ada)
    Channel("runs", REMOTE, monolith.sync, service.sync).push([RowKey("run", run.id)])
    assert service.runs.get_run(ada.id, run.id) == run


def test_a_profile_saved_unchanged_records_nothing(monolith):
    ada = monolith.user("ada@example.com")
    monolith.sync.settle(monolith.sync.pending(10))
    monolith.accounts.update_profile(ada.id, Profile())  # the same values again
    assert monolith.sync.pending(10) == []


def test_a_push_and_the_applier_delivering_the_same_new_row_at_once(monolith, service,
                                                                     monkeypatch):
    """F1 saw it: both looked, found no row, and the second insert hit the primary key
    (`UNIQUE constraint failed: runs.id`). The second one now looks again and skips it."""
    from monolith.runs import sync as runs_sync

    ada = monolith.user("ada@example.com")
    run = monolith.run(ada)
    user_change, run_change = monolith.sync.export([RowKey("run", run.id)])
    service.sync.apply([user_change])
    real_newer, raced = runs_sync._newer, []

    def the_other_apply_lands_first(*args):
        if not raced:  # between this apply's look and its insert
            raced.append("racing")
            raced[0] = service.sync.apply([run_change])
        return real_newer(*args)

    monkeypatch.setattr(runs_sync, "_newer", the_other_apply_lands_first)
    assert service.sync.apply([run_change]) == Applied(applied=0, skipped=1)
    assert raced == [Applied(applied=1, skipped=0)]
    assert service.runs.get_run(ada.id, run.id) == run
