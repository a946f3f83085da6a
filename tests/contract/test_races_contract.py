"""The Races contract's time rules: the very same assertions against both sides.

- `local`: LocalRaces on a fresh SQLite file.
- `wsgi`: RemoteRaces -> a service serving that LocalRaces on the kit's skeleton
  (shims/service_app.py), in this process. Races have no extracted service yet; this is the
  one a team would extract, and its errors must reach callers as the local side raises them.

Both sides share one clock the test moves, so a race can be created ahead and then pass.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_engine, make_sessions
from monolith.races.service import LocalRaces
from contracts.accounts import Profile, SignUp
from contracts.races import RACES, RaceInput, RemoteRaces
from shims.errors import Conflict
from shims.service_app import service_app
from shims.transport import WsgiTransport
from tests.contract.support import FAST_HASH, PASSWORD

SIDES = ("local", "wsgi")
RACE_DAY = dt.date(2026, 6, 1)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class RacesSide:
    races: Any  # the Races under test
    clock: Clock
    user_id: int


@pytest.fixture(params=SIDES)
def side(request, tmp_path) -> Iterator[RacesSide]:
    engine = make_engine(f"sqlite:///{tmp_path / 'races.db'}")
    create_schema(engine)
    sessions = make_sessions(engine)
    clock = Clock()
    local = LocalRaces(sessions, clock=clock)
    user = LocalAccounts(sessions, hash_method=FAST_HASH).sign_up(
        SignUp(email=f"racer-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD,
               profile=Profile()))
    races = local if request.param == "local" else RemoteRaces(WsgiTransport(service_app(
        "races", {"REQUEST_DEADLINE": 5.0}, [(RACES, local)], guard=lambda method: None,
        title="Races", description="races, served for the contract tests")))
    yield RacesSide(races, clock, user.id)
    engine.dispose()


def race_input(day: dt.date = RACE_DAY) -> RaceInput:
    return RaceInput(name="Harbour 10K", date=day, distance=10000.0)


def test_a_race_in_the_past_cannot_be_created(side):
    side.clock.now = dt.datetime(2026, 6, 2, 12, 0, tzinfo=dt.timezone.utc)  # 1 June is over
    with pytest.raises(Conflict) as caught:
        side.races.create_race(side.user_id, race_input())
    assert (caught.value.status, caught.value.field) == (409, "date")
    assert caught.value.message == "date must be today or later; 2026-06-01 has passed"
    assert side.races.list_races(side.user_id) == []


def test_a_race_in_the_past_cannot_be_joined(side):
    race = side.races.create_race(side.user_id, race_input())
    side.clock.now = dt.datetime(2026, 6, 3, 8, 0, tzinfo=dt.timezone.utc)
    with pytest.raises(Conflict) as caught:
        side.races.join_race(side.user_id, race.id)
    assert (caught.value.status, caught.value.field) == (409, "date")
    assert "a race in the past cannot be joined" in caught.value.message
    assert not side.races.get_race(side.user_id, race.id).joined


def test_a_race_on_its_day_can_still_be_created_and_joined(side):
    side.clock.now = dt.datetime(2026, 6, 1, 20, 0, tzinfo=dt.timezone.utc)
    race = side.races.create_race(side.user_id, race_input())
    assert side.races.join_race(side.user_id, race.id).joined
