"""The DataSync contract (export, apply, pending, settle, backlog, keys, digest) on every
side (see conftest.py): versioned changes, applied only when newer, recorded in the outbox
by every write and never sent back."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from contracts import MAX_ID
from shims.errors import Conflict, NotFound, ValidationError
from shims.ids import new_id
from shims.sync import Applied, Backlog, PendingChange, RowChange, RowKey, TableDigest
from tests.contract.support import PASSWORD, run_input

USER_COLUMNS = {"id", "email", "password_hash", "first_name", "last_name", "age", "weight",
                "max_hr", "rest_hr", "vo2max", "is_admin", "strava_token", "created_at"}
RUN_COLUMNS = {"id", "user_id", "name", "distance", "start_date", "elapsed_time",
               "average_speed", "average_heartrate", "total_elevation_gain", "strava_id",
               "created_at"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
NOW_US = int(time.time() * 1_000_000)


def export_one(side, entity: str, row_id: int) -> RowChange:
    """The change for exactly this row (an export of a run also carries its user)."""
    return next(c for c in side.sync.export([RowKey(entity, row_id)])
                if (c.entity, c.id) == (entity, row_id))


def mine(side, *ids: int) -> dict[tuple[str, int], int]:
    """This test's pending changes (the HTTP side's outbox is shared by the module)."""
    return {(p.entity, p.id): p.version for p in side.sync.pending(1000) if p.id in ids}


def test_export_a_user(side):
    user = side.user(first_name="Ada", age=36, weight=61.5)
    side.accounts.link_strava(user.id, "token-1")
    exported = side.sync.export([RowKey("user", user.id)])
    assert type(exported) is list and len(exported) == 1
    [change] = exported
    assert type(change) is RowChange
    assert (change.entity, change.id) == ("user", user.id)
    assert change.version > NOW_US - 60_000_000  # a hybrid clock: microseconds, or more
    assert set(change.row) == USER_COLUMNS
    assert {name: change.row[name] for name in ("id", "email", "first_name", "last_name",
                                                "age", "weight", "max_hr", "is_admin",
                                                "strava_token")} == {
        "id": user.id, "email": user.email, "first_name": "Ada", "last_name": "", "age": 36,
        "weight": 61.5, "max_hr": None, "is_admin": False, "strava_token": "token-1"}
    assert change.row["created_at"] == user.created_at.isoformat() + "+00:00"  # RFC 3339
    assert isinstance(change.row["password_hash"], str)
    assert PASSWORD not in change.row["password_hash"]


def test_export_of_a_run_carries_its_user_first(side):
    user, other = side.user(), side.user()
    first = side.runs.add_run(user.id, run_input(1, strava_id=11, average_heartrate=150.0))
    second = side.runs.add_run(user.id, run_input(2))
    side.runs.add_run(other.id, run_input(1))

    changes = side.sync.export([RowKey("run", first.id)])
    assert [(c.entity, c.id) for c in changes] == [("user", user.id), ("run", first.id)]
    run = changes[1]
    assert set(run.row) == RUN_COLUMNS
    record = {field.name: getattr(first, field.name) for field in dataclasses.fields(first)}
    assert {name: run.row[name] for name in record} == {
        **record, "start_date": first.start_date.isoformat() + "+00:00"}

    scope = side.sync.export([RowKey("user_runs", user.id)])
    assert [(c.entity, c.id) for c in scope] == [
        ("user", user.id), *sorted([("run", first.id), ("run", second.id)])]
    assert side.sync.export([RowKey("run", first.id), RowKey("user_runs", user.id)]) == [
        scope[0], run, *[c for c in scope[1:] if c.id != first.id]]  # each row once


def test_export_of_a_deleted_row_is_a_tombstone_and_of_an_unknown_one_says_so(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input())
    side.runs.delete_run(user.id, run.id)
    tombstone = export_one(side, "run", run.id)
    assert tombstone.row is None and tombstone.version > 0
    never = new_id()
    assert side.sync.export([RowKey("run", never)]) == [RowChange("run", never, 0, None)]
    assert side.sync.export([RowKey("user_runs", user.id)]) == [export_one(side, "user", user.id)]
    assert side.sync.export([]) == []


def test_export_of_an_unknown_entity_or_an_impossible_id_is_not_found(side):
    user = side.user()
    with pytest.raises(NotFound) as unknown:
        side.sync.export([RowKey("user", user.id), RowKey("race", 1)])
    assert unknown.value.field == "entity"
    for impossible in (0, -1, MAX_ID + 1, 2**64):
        with pytest.raises(NotFound) as raised:
            side.sync.export([RowKey("user", impossible)])
        assert raised.value.field == "id"


# --- the outbox: every write recorded, pending until settled ----------------------------

def test_every_write_is_pending_in_the_outbox_oldest_first(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input())
    pending = mine(side, user.id, run.id)
    assert set(pending) == {("user", user.id), ("run", run.id)}
    assert pending[("user", user.id)] < pending[("run", run.id)]  # parents were written first
    listed = [p for p in side.sync.pending(1000) if p.id in (user.id, run.id)]
    assert [p.entity for p in listed] == ["user", "run"] and type(listed[0]) is PendingChange
    backlog = side.sync.backlog()
    assert type(backlog) is Backlog and backlog.entries >= 2 and backlog.oldest_seconds >= 0


def test_settle_clears_only_the_version_that_was_mirrored(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input())
    exported = side.sync.export([RowKey("run", run.id)])
    side.runs.update_run(user.id, run.id, run_input(name="Changed after the export"))
    settled = side.sync.settle([PendingChange(c.entity, c.id, c.version) for c in exported])
    assert settled == 1  # the user; the run changed since, so it stays pending
    pending = mine(side, user.id, run.id)
    assert list(pending) == [("run", run.id)]
    assert pending[("run", run.id)] > exported[1].version
    assert side.sync.settle([PendingChange("run", run.id, pending[("run", run.id)])]) == 1
    assert mine(side, user.id, run.id) == {}
    assert side.sync.settle([PendingChange("run", run.id, pending[("run", run.id)])]) == 0


def test_each_change_of_a_row_gets_a_larger_version(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input())
    versions = [export_one(side, "run", run.id).version]
    for name in ("one", "two", "three"):
        side.runs.update_run(user.id, run.id, run_input(name=name))
        versions.append(export_one(side, "run", run.id).version)
    side.runs.delete_run(user.id, run.id)
    versions.append(export_one(side, "run", run.id).version)
    assert versions == sorted(set(versions))


def test_pending_refuses_a_limit_out_of_range(side):
    for limit in (0, -1, 1001):
        with pytest.raises(ValidationError) as raised:
            side.sync.pending(limit)
        assert raised.value.field == "limit"


# --- apply: newer changes only ---------------------------------------------------------

def test_apply_writes_a_newer_change_and_skips_an_old_or_repeated_one(side):
    user = side.user(first_name="Before")
    current = export_one(side, "user", user.id)
    newer = dataclasses.replace(current, version=current.version + 10,
                                row={**current.row, "first_name": "Newer"})
    assert side.sync.apply([newer]) == Applied(applied=1, skipped=0)
    assert side.accounts.get_user(user.id).first_name == "Newer"
    assert side.sync.apply([newer]) == Applied(applied=0, skipped=1)  # idempotent
    older = dataclasses.replace(current, row={**current.row, "first_name": "Older"})
    assert side.sync.apply([older]) == Applied(applied=0, skipped=1)
    assert side.accounts.get_user(user.id).first_name == "Newer"


def test_an_applied_change_is_not_sent_back_and_later_writes_version_past_it(side):
    user = side.user()
    current = export_one(side, "user", user.id)
    side.sync.settle([PendingChange("user", user.id, current.version)])
    future = current.version + 3_600_000_000  # a clock an hour ahead on the other side
    side.sync.apply([dataclasses.replace(current, version=future,
                                         row={**current.row, "last_name": "Mirrored"})])
    assert mine(side, user.id) == {}  # a mirrored change never bounces back
    side.accounts.update_profile(user.id, dataclasses.replace(
        side.accounts.get_user(user.id).profile, first_name="Local"))
    assert mine(side, user.id)[("user", user.id)] > future


def test_apply_creates_rows_with_their_ids_parents_first(side, local_source):
    """What `turnout data copy` and mirrored writes rely on: ids, values and checksums."""
    user = local_source.user(first_name="Copied", vo2max=55.5)
    user = local_source.accounts.link_strava(user.id, "token-7")
    runs = [local_source.runs.add_run(user.id, run_input(day, strava_id=day * 10,
                                                         average_heartrate=140.0 + day))
            for day in (1, 2)]
    changes = local_source.sync.export([RowKey("user_runs", user.id)])
    assert side.sync.apply(changes) == Applied(applied=3, skipped=0)
    assert side.sync.apply(changes) == Applied(applied=0, skipped=3)

    assert side.accounts.get_user(user.id) == user
    assert side.accounts.authenticate(user.email, PASSWORD) == user  # the hash travelled
    assert side.accounts.strava_link(user.id) == local_source.accounts.strava_link(user.id)
    assert side.runs.list_runs(user.id, 2026, 5) == runs
    assert side.sync.export([RowKey("user_runs", user.id)]) == changes  # versions travel too
    assert mine(side, user.id, *(run.id for run in runs)) == {}
    for table, ids in (("users", [user.id]), ("runs", [run.id for run in runs])):
        here, there = side.sync.digest(table), local_source.sync.digest(table)
        assert [here.checksums[str(i)] for i in ids] == [there.checksums[str(i)] for i in ids]


def test_apply_a_tombstone_deletes_and_an_older_row_never_comes_back(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input())
    alive = export_one(side, "run", run.id)
    tombstone = RowChange("run", run.id, alive.version + 1, None)
    assert side.sync.apply([tombstone]) == Applied(applied=1, skipped=0)
    with pytest.raises(NotFound):
        side.runs.get_run(user.id, run.id)
    assert side.sync.apply([alive]) == Applied(applied=0, skipped=1)  # no resurrection
    with pytest.raises(NotFound):
        side.runs.get_run(user.id, run.id)
    assert side.sync.apply([tombstone]) == Applied(applied=0, skipped=1)


def test_a_user_tombstone_takes_the_users_runs(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input())
    gone = RowChange("user", user.id, export_one(side, "user", user.id).version + 1, None)
    assert side.sync.apply([gone]).applied == 1
    with pytest.raises(NotFound):
        side.accounts.get_user(user.id)
    assert export_one(side, "run", run.id).row is None


def test_an_unversioned_absence_deletes_nothing(side):
    """A row missing from an export is no delete: only a recorded tombstone is."""
    user = side.user()
    assert side.sync.apply([RowChange("user", user.id, 0, None)]).applied == 0
    assert side.accounts.get_user(user.id) == user


def test_apply_refuses_an_unknown_entity_and_applies_nothing(side):
    user = side.user(first_name="Before")
    change = export_one(side, "user", user.id)
    for entity in ("race", "user_runs"):
        with pytest.raises(NotFound) as raised:
            side.sync.apply([dataclasses.replace(change, version=change.version + 1,
                                                 row={**change.row, "first_name": "After"}),
                             RowChange(entity, 1, 1, None)])
        assert raised.value.field == "entity"
    assert side.accounts.get_user(user.id) == user


def test_apply_refuses_an_impossible_id(side):
    with pytest.raises(NotFound) as raised:
        side.sync.apply([RowChange("user", MAX_ID + 1, 1, None)])
    assert raised.value.field == "id"


BAD_ROWS = {
    "unknown column": lambda user, run: ("user", user["id"], {**user, "nickname": "x"}),
    "no id": lambda user, run: ("user", user["id"],
                                {k: v for k, v in user.items() if k != "id"}),
    "not a date": lambda user, run: ("run", run["id"], {**run, "start_date": "yesterday"}),
    "text for a number": lambda user, run: ("run", run["id"], {**run, "distance": "far"}),
    "number for text": lambda user, run: ("user", user["id"], {**user, "email": 42}),
    "number for a flag": lambda user, run: ("user", user["id"], {**user, "is_admin": 1}),
    "null where required": lambda user, run: ("user", user["id"], {**user, "email": None}),
    "id out of range": lambda user, run: ("run", run["id"], {**run, "strava_id": 2**64}),
    "row outside its key": lambda user, run: ("run", run["id"], {**run, "id": new_id()}),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_apply_refuses_rows_that_break_the_schema_and_applies_nothing(side, case):
    user = side.user(first_name="Before")
    run = side.runs.add_run(user.id, run_input())
    user_change, run_change = export_one(side, "user", user.id), export_one(side, "run", run.id)
    entity, key_id, bad_row = BAD_ROWS[case](user_change.row, run_change.row)
    with pytest.raises(Conflict) as raised:
        side.sync.apply([
            dataclasses.replace(user_change, version=user_change.version + 1,
                                row={**user_change.row, "first_name": "After"}),
            RowChange(entity, key_id, run_change.version + 1, bad_row),
        ])
    assert raised.value.field == "rows"
    assert side.accounts.get_user(user.id) == user
    assert side.runs.get_run(user.id, run.id) == run


def test_apply_refuses_rows_that_conflict_with_this_side(side):
    user, other = side.user(), side.user()
    run = side.runs.add_run(user.id, run_input())
    other_row = export_one(side, "user", other.id).row
    run_row = export_one(side, "run", run.id).row
    orphan_id = new_id()
    orphan = {**run_row, "id": orphan_id, "user_id": new_id()}  # its user is not here
    taken = {**other_row, "id": new_id(), "email": user.email}  # the email is someone's

    for change in (RowChange("run", orphan_id, 5, orphan), RowChange("user", taken["id"], 5,
                                                                      taken)):
        with pytest.raises(Conflict) as raised:
            side.sync.apply([change])
        assert raised.value.field == "rows"
    assert export_one(side, "run", orphan_id).row is None
    assert export_one(side, "user", taken["id"]).row is None


def test_keys_page_through_a_table_in_id_order(side):
    users = sorted(side.user().id for _ in range(3))
    seen, after = [], users[0] - 1  # other tests' users may interleave on the HTTP side
    while True:
        page = side.sync.keys("user", after, 2)
        if not page:
            break
        assert page == sorted(page) and page[0] > after
        seen += page
        after = page[-1]
    assert set(users) <= set(seen)
    with pytest.raises(NotFound) as raised:
        side.sync.keys("race", 0, 10)
    assert raised.value.field == "entity"


def test_digest(side):
    user = side.user()
    other = side.user()
    run = side.runs.add_run(user.id, run_input())

    users = side.sync.digest("users")
    assert type(users) is TableDigest and users.table == "users"
    assert users.count == len(users.checksums)
    assert {str(user.id), str(other.id)} <= set(users.checksums)
    assert all(SHA256.match(checksum) for checksum in users.checksums.values())
    assert users.checksums[str(user.id)] != users.checksums[str(other.id)]
    runs = side.sync.digest("runs")
    assert runs.table == "runs" and runs.count == len(runs.checksums) >= 1
    assert SHA256.match(runs.checksums[str(run.id)])
    assert side.sync.digest("users").checksums[str(user.id)] == users.checksums[str(user.id)]

    side.accounts.update_profile(user.id, dataclasses.replace(user.profile, first_name="New"))
    side.accounts.delete_user(other.id)
    after = side.sync.digest("users")
    assert after.checksums[str(user.id)] != users.checksums[str(user.id)]
    assert str(other.id) not in after.checksums
    side.runs.update_run(user.id, run.id, run_input(name="Changed"))
    assert side.sync.digest("runs").checksums[str(run.id)] != runs.checksums[str(run.id)]


def test_digest_of_an_unknown_table_is_refused(side):
    for table in ("races", "", "users; drop table users"):
        with pytest.raises(NotFound) as raised:
            side.sync.digest(table)
        assert raised.value.field == "table"
    user = side.user()
    assert str(user.id) in side.sync.digest("users").checksums  # the table is still there
