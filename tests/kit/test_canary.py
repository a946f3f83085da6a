"""Sticky canary buckets, and how plan_route uses them."""

from __future__ import annotations

from typing import Protocol

import pytest

from shims.canary import bucket, goes_remote
from shims.contract import describe, read, write
from shims.flags.model import Flag
from shims.router import LOCAL, REMOTE, plan_route

FEATURE = "notes"
USERS = range(1, 2001)


class Notes(Protocol):
    @read
    def get(self, user_id: int) -> str: ...

    @read
    def count(self) -> int: ...

    @write
    def save(self, user_id: int, text: str) -> str: ...

    @write
    def purge(self) -> int: ...


NOTES = describe(Notes, "notes")


def side(user_id, percent, method="get"):
    flag = Flag(FEATURE, "canary", percent)
    return plan_route(flag, False, NOTES.method(method), user_id, owns_data=True).primary


def remote_users(percent):
    return {user for user in USERS if side(user, percent) == REMOTE}


def test_buckets_are_in_range_and_stable():
    for user in range(500):
        value = bucket(FEATURE, user)
        assert 0 <= value < 100
        assert bucket(FEATURE, user) == value


@pytest.mark.parametrize("percent", [1, 30, 50, 99.5])
def test_same_user_always_lands_on_the_same_side(percent):
    for user in range(1, 201):
        first = side(user, percent)
        assert all(side(user, percent) == first for _ in range(20))
        # reads and writes of one user agree, so a user sees their own writes
        assert side(user, percent, "save") == first


@pytest.mark.parametrize("percent", [10, 30, 75])
def test_roughly_the_given_share_goes_remote(percent):
    share = 100 * len(remote_users(percent)) / len(USERS)
    assert percent - 5 <= share <= percent + 5


def test_raising_the_percentage_only_moves_users_from_local_to_remote():
    previous = set()
    for percent in (0, 1, 5, 10, 25, 30, 50, 75, 90, 99, 100):
        current = remote_users(percent)
        assert previous <= current, f"users moved back to local at {percent}%"
        previous = current


def test_zero_percent_is_all_local_and_hundred_is_all_remote():
    assert all(side(user, 0) == LOCAL for user in USERS)
    assert all(side(user, 100) == REMOTE for user in USERS)
    assert all(not goes_remote(FEATURE, user, 0) for user in USERS)
    assert all(goes_remote(FEATURE, user, 100) for user in USERS)


def test_string_and_integer_actor_ids_are_bucketed_alike():
    # the same user id arriving as text (a URL) or a number lands on the same side
    assert all(bucket(FEATURE, user) == bucket(FEATURE, str(user)) for user in range(200))


def test_features_spread_their_canaries_over_different_users():
    runs = {user for user in USERS if goes_remote("runs", user, 30)}
    races = {user for user in USERS if goes_remote("races", user, 30)}
    assert runs != races


@pytest.mark.parametrize("method", ["count", "purge"])
def test_calls_without_an_actor_are_deterministic(method):
    for percent in (0, 30, 50, 100):
        sides = {side(None, percent, method) for _ in range(50)}
        assert len(sides) == 1
    assert side(None, 0, method) == LOCAL
    assert side(None, 100, method) == REMOTE


def test_canary_writes_mirror_to_the_other_side_for_data_owning_features_only():
    save = NOTES.method("save")
    for user in range(1, 101):
        route = plan_route(Flag(FEATURE, "canary", 40), False, save, user, owns_data=True)
        assert route.mirror_to == (LOCAL if route.primary == REMOTE else REMOTE)
        assert route.shadow is None
        stateless = plan_route(Flag(FEATURE, "canary", 40), False, save, user, owns_data=False)
        assert stateless.primary == route.primary
        assert stateless.mirror_to is None
