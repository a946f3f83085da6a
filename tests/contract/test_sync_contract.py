"""The DataSync contract (export, apply, digest) on every side (see conftest.py)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from shims.contracts import MAX_ID
from shims.errors import Conflict, NotFound, ValidationError
from shims.ids import new_id
from shims.sync import RowKey, RowSet, TableDigest
from tests.contract.support import PASSWORD, run_input

USER_COLUMNS = {"id", "email", "password_hash", "first_name", "last_name", "age", "weight",
                "max_hr", "rest_hr", "vo2max", "is_admin", "strava_token", "created_at"}
RUN_COLUMNS = {"id", "user_id", "name", "distance", "start_date", "elapsed_time",
               "average_speed", "average_heartrate", "total_elevation_gain", "strava_id",
               "created_at"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def export_one(side, entity: str, row_id: int) -> tuple[dict, ...]:
    [row_set] = side.sync.export([RowKey(entity, row_id)])
    return row_set.rows


def by_id(rows) -> list[dict]:
    return sorted(rows, key=lambda row: row["id"])


def test_export_a_user(side):
    user = side.user(first_name="Ada", age=36, weight=61.5)
    side.accounts.link_strava(user.id, "token-1")
    exported = side.sync.export([RowKey("user", user.id)])
    assert type(exported) is list and len(exported) == 1
    [row_set] = exported
    assert type(row_set) is RowSet and type(row_set.key) is RowKey
    assert row_set.key == RowKey("user", user.id)
    assert type(row_set.rows) is tuple and len(row_set.rows) == 1
    [row] = row_set.rows
    assert set(row) == USER_COLUMNS
    assert {name: row[name] for name in ("id", "email", "first_name", "last_name", "age",
                                         "weight", "max_hr", "is_admin", "strava_token")} == {
        "id": user.id, "email": user.email, "first_name": "Ada", "last_name": "", "age": 36,
        "weight": 61.5, "max_hr": None, "is_admin": False, "strava_token": "token-1"}
    assert row["created_at"] == user.created_at.isoformat()  # wire form: ISO 8601 text
    assert isinstance(row["password_hash"], str) and PASSWORD not in row["password_hash"]


def test_export_a_run_and_a_runners_runs(side):
    user, other = side.user(), side.user()
    first = side.runs.add_run(user.id, run_input(1, strava_id=11, average_heartrate=150.0))
    second = side.runs.add_run(user.id, run_input(2))
    side.runs.add_run(other.id, run_input(1))

    [row] = export_one(side, "run", first.id)
    assert set(row) == RUN_COLUMNS
    record = {field.name: getattr(first, field.name) for field in dataclasses.fields(first)}
    assert {name: row[name] for name in record} == {
        **record, "start_date": first.start_date.isoformat()}

    runs = by_id(export_one(side, "user_runs", user.id))
    assert [run["id"] for run in runs] == sorted([first.id, second.id])
    assert all(run["user_id"] == user.id for run in runs)
    assert by_id(export_one(side, "run", second.id)) == [
        run for run in runs if run["id"] == second.id]


def test_export_answers_each_key_in_order_and_nothing_for_missing_rows(side):
    user = side.user()  # has no runs
    gone = side.user()
    side.accounts.delete_user(gone.id)
    keys = [RowKey("run", new_id()), RowKey("user", user.id), RowKey("user", gone.id),
            RowKey("user_runs", user.id), RowKey("user_runs", gone.id)]
    exported = side.sync.export(keys)
    assert [row_set.key for row_set in exported] == keys
    assert [len(row_set.rows) for row_set in exported] == [0, 1, 0, 0, 0]
    assert side.sync.export([]) == []


def test_export_refuses_an_unknown_entity_or_an_impossible_id(side):
    user = side.user()
    with pytest.raises(ValidationError) as unknown:
        side.sync.export([RowKey("user", user.id), RowKey("race", 1)])
    assert unknown.value.field == "entity"
    for impossible in (0, -1, MAX_ID + 1, 2**64):
        with pytest.raises(ValidationError) as raised:
            side.sync.export([RowKey("user", impossible)])
        assert raised.value.field == "id"


def test_apply_upserts_and_deletes_within_each_scope(side):
    user = side.user()
    kept = side.runs.add_run(user.id, run_input(1, strava_id=1))
    dropped = side.runs.add_run(user.id, run_input(2, strava_id=2))
    rows = {row["id"]: row for row in export_one(side, "user_runs", user.id)}
    changed = {**rows[kept.id], "name": "Renamed on the other side", "distance": 6000.0}
    added = {**rows[kept.id], "id": new_id(), "strava_id": 3, "start_date": "2026-05-03T07:00:00"}

    written = side.sync.apply([RowSet(RowKey("user_runs", user.id), (changed, added))])
    assert written == 3  # one removed, two written

    assert side.runs.get_run(user.id, kept.id) == dataclasses.replace(
        kept, name="Renamed on the other side", distance=6000.0)
    with pytest.raises(NotFound):
        side.runs.get_run(user.id, dropped.id)
    copied = side.runs.get_run(user.id, added["id"])  # the id travels verbatim
    assert (copied.strava_id, copied.start_date.day) == (3, 3)
    assert by_id(export_one(side, "user_runs", user.id)) == by_id([changed, added])


def test_apply_a_user_row_and_a_single_run(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input(4))
    [user_row] = export_one(side, "user", user.id)
    [run_row] = export_one(side, "run", run.id)
    written = side.sync.apply([
        RowSet(RowKey("user", user.id), ({**user_row, "first_name": "Mirrored"},)),
        RowSet(RowKey("run", run.id), ({**run_row, "elapsed_time": 1800},)),
    ])
    assert written == 2
    assert side.accounts.get_user(user.id) == dataclasses.replace(user, first_name="Mirrored")
    assert side.runs.get_run(user.id, run.id).elapsed_time == 1800


def test_apply_an_empty_set_deletes_the_scope(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input())
    other = side.runs.add_run(user.id, run_input(2))
    assert side.sync.apply([RowSet(RowKey("run", run.id), ())]) == 1
    with pytest.raises(NotFound):
        side.runs.get_run(user.id, run.id)
    assert side.runs.get_run(user.id, other.id) == other

    assert side.sync.apply([RowSet(RowKey("user", user.id), ())]) == 1
    with pytest.raises(NotFound):
        side.accounts.get_user(user.id)
    assert export_one(side, "user_runs", user.id) == ()  # the user's runs went with them
    assert side.sync.apply([RowSet(RowKey("user", user.id), ())]) == 0  # nothing left


def test_apply_what_export_gave_changes_nothing(side):
    user = side.user(first_name="Idem")
    side.runs.import_runs(user.id, [run_input(day, strava_id=day) for day in (1, 2, 3)])
    keys = [RowKey("user", user.id), RowKey("user_runs", user.id)]
    before = side.sync.export(keys)
    assert side.sync.apply(before) == 4
    assert side.sync.apply(before) == 4
    assert side.sync.export(keys) == before


def test_rows_copied_from_another_side_match_it_exactly(side, local_source):
    """What `turnout data copy` and mirrored writes rely on: ids, values and checksums."""
    user = local_source.user(first_name="Copied", vo2max=55.5)
    user = local_source.accounts.link_strava(user.id, "token-7")
    runs = [local_source.runs.add_run(user.id, run_input(day, strava_id=day * 10,
                                                         average_heartrate=140.0 + day))
            for day in (1, 2)]
    keys = [RowKey("user", user.id), RowKey("user_runs", user.id)]
    assert side.sync.apply(local_source.sync.export(keys)) == 3

    assert side.accounts.get_user(user.id) == user
    assert side.accounts.authenticate(user.email, PASSWORD) == user  # the hash travelled
    assert side.accounts.strava_link(user.id) == local_source.accounts.strava_link(user.id)
    assert side.runs.list_runs(user.id, 2026, 5) == runs
    assert side.sync.export(keys) == local_source.sync.export(keys)
    for table, ids in (("users", [user.id]), ("runs", [run.id for run in runs])):
        here, there = side.sync.digest(table), local_source.sync.digest(table)
        assert [here.checksums[str(i)] for i in ids] == [there.checksums[str(i)] for i in ids]


def test_apply_refuses_an_unknown_entity_and_applies_nothing(side):
    user = side.user(first_name="Before")
    [row] = export_one(side, "user", user.id)
    with pytest.raises(ValidationError) as raised:
        side.sync.apply([RowSet(RowKey("user", user.id), ({**row, "first_name": "After"},)),
                         RowSet(RowKey("race", 1), ())])
    assert raised.value.field == "entity"
    assert side.accounts.get_user(user.id) == user


def test_apply_refuses_an_impossible_id(side):
    with pytest.raises(ValidationError) as raised:
        side.sync.apply([RowSet(RowKey("user", MAX_ID + 1), ())])
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
    "run of another user": lambda user, run: ("user_runs", new_id(), run),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_apply_refuses_rows_that_break_the_schema_and_applies_nothing(side, case):
    user = side.user(first_name="Before")
    run = side.runs.add_run(user.id, run_input())
    [user_row] = export_one(side, "user", user.id)
    [run_row] = export_one(side, "run", run.id)
    entity, key_id, bad_row = BAD_ROWS[case](user_row, run_row)
    with pytest.raises(ValidationError) as raised:
        side.sync.apply([
            RowSet(RowKey("user", user.id), ({**user_row, "first_name": "After"},)),
            RowSet(RowKey(entity, key_id), (bad_row,)),
        ])
    assert raised.value.field == "rows"
    assert side.accounts.get_user(user.id) == user
    assert side.runs.get_run(user.id, run.id) == run


def test_apply_refuses_rows_that_conflict_with_this_side(side):
    user, other = side.user(), side.user()
    run = side.runs.add_run(user.id, run_input())
    [other_row] = export_one(side, "user", other.id)
    [run_row] = export_one(side, "run", run.id)
    orphan_id = new_id()
    orphan = {**run_row, "id": orphan_id, "user_id": new_id()}  # its user is not here
    taken = {**other_row, "id": new_id(), "email": user.email}  # the email is someone's

    for row_set in (RowSet(RowKey("run", orphan_id), (orphan,)),
                    RowSet(RowKey("user", taken["id"]), (taken,))):
        with pytest.raises(Conflict) as raised:
            side.sync.apply([row_set])
        assert raised.value.field == "rows"
    assert export_one(side, "run", orphan_id) == ()
    assert export_one(side, "user", taken["id"]) == ()


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
        with pytest.raises(ValidationError) as raised:
            side.sync.digest(table)
        assert raised.value.field == "table"
    user = side.user()
    assert str(user.id) in side.sync.digest("users").checksums  # the table is still there
