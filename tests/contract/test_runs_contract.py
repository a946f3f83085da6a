"""The Runs contract, method by method, on every side (see conftest.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from contracts import MAX_ID
from contracts.runs import ImportCount, RunInput, RunRecord
from shims.errors import NotFound, ValidationError
from tests.contract.support import run_input

IMPOSSIBLE_IDS = (0, -1, MAX_ID + 1)


def expected_record(record: RunRecord, run: RunInput, *, user_id: int,
                    strava_id: int | None = None) -> RunRecord:
    """The record a run input should become, keeping the record's id."""
    return RunRecord(id=record.id, user_id=user_id, name=run.name, distance=run.distance,
                     start_date=run.start_date, elapsed_time=run.elapsed_time,
                     average_speed=run.distance / run.elapsed_time,
                     average_heartrate=run.average_heartrate,
                     total_elevation_gain=run.total_elevation_gain, strava_id=strava_id)


def missing_run_id(side, user_id: int) -> int:
    run = side.runs.add_run(user_id, run_input())
    side.runs.delete_run(user_id, run.id)
    return run.id


def test_add_run_returns_the_new_run(side):
    user = side.user()
    run = run_input(12, name="Tempo", distance=10_000.0, elapsed_time=2700,
                    average_heartrate=158.5, total_elevation_gain=42.0)
    record = side.runs.add_run(user.id, run)
    assert type(record) is RunRecord
    assert isinstance(record.id, int) and 2**40 < record.id <= MAX_ID
    assert record == expected_record(record, run, user_id=user.id)
    assert record.average_speed == pytest.approx(10_000 / 2700)
    assert record.pace == pytest.approx(270.0)
    assert type(record.start_date) is dt.datetime and record.start_date.tzinfo is None


def test_add_run_keeps_a_strava_id(side):
    user = side.user()
    record = side.runs.add_run(user.id, run_input(strava_id=MAX_ID))
    assert record.strava_id == MAX_ID
    assert side.runs.get_run(user.id, record.id).strava_id == MAX_ID


def test_add_run_for_a_missing_user_is_not_found(side):
    user = side.user()
    side.accounts.delete_user(user.id)
    with pytest.raises(NotFound):
        side.runs.add_run(user.id, run_input())


def test_get_run(side):
    user = side.user()
    record = side.runs.add_run(user.id, run_input(3, average_heartrate=140.0))
    fetched = side.runs.get_run(user.id, record.id)
    assert type(fetched) is RunRecord
    assert fetched == record


def test_another_runners_run_is_not_found(side):
    owner, other = side.user(), side.user()
    record = side.runs.add_run(owner.id, run_input())
    with pytest.raises(NotFound) as foreign:
        side.runs.get_run(other.id, record.id)
    missing = missing_run_id(side, owner.id)
    with pytest.raises(NotFound) as absent:
        side.runs.get_run(other.id, missing)
    # Exactly like a missing run: the answer leaks nothing about other runners.
    assert foreign.value.message.replace(str(record.id), "ID") == \
        absent.value.message.replace(str(missing), "ID")
    assert side.runs.get_run(owner.id, record.id) == record


@pytest.mark.parametrize("run_id", IMPOSSIBLE_IDS)
def test_get_run_with_an_impossible_id_is_not_found(side, run_id):
    user = side.user()
    with pytest.raises(NotFound):
        side.runs.get_run(user.id, run_id)


def test_list_runs_holds_one_month_in_start_order(side):
    user = side.user()
    add = side.runs.add_run
    last_of_april = add(user.id, run_input(start_date=dt.datetime(2026, 4, 30, 23, 59, 59)))
    late_may = add(user.id, run_input(start_date=dt.datetime(2026, 5, 31, 23, 59, 59)))
    first_of_may = add(user.id, run_input(start_date=dt.datetime(2026, 5, 1, 0, 0, 0)))
    mid_may = add(user.id, run_input(start_date=dt.datetime(2026, 5, 15, 6, 30)))
    first_of_june = add(user.id, run_input(start_date=dt.datetime(2026, 6, 1, 0, 0, 0)))

    may = side.runs.list_runs(user.id, 2026, 5)
    assert all(type(run) is RunRecord for run in may)
    assert may == [first_of_may, mid_may, late_may]
    assert side.runs.list_runs(user.id, 2026, 4) == [last_of_april]
    assert side.runs.list_runs(user.id, 2026, 6) == [first_of_june]
    assert side.runs.list_runs(user.id, 2025, 5) == []


def test_list_runs_across_the_turn_of_the_year(side):
    user = side.user()
    december = side.runs.add_run(user.id, run_input(
        start_date=dt.datetime(2025, 12, 31, 23, 59, 59)))
    january = side.runs.add_run(user.id, run_input(start_date=dt.datetime(2026, 1, 1)))
    assert side.runs.list_runs(user.id, 2025, 12) == [december]
    assert side.runs.list_runs(user.id, 2026, 1) == [january]


def test_list_runs_orders_runs_at_the_same_start_by_id(side):
    user = side.user()
    runs = [side.runs.add_run(user.id, run_input(9, name=f"Run {i}")) for i in range(3)]
    assert side.runs.list_runs(user.id, 2026, 5) == sorted(runs, key=lambda run: run.id)


def test_list_runs_holds_only_the_runners_own_runs(side):
    user, other = side.user(), side.user()
    mine = side.runs.add_run(user.id, run_input(2))
    side.runs.add_run(other.id, run_input(2))
    assert side.runs.list_runs(user.id, 2026, 5) == [mine]


@pytest.mark.parametrize(("year", "month", "field"), [
    (2026, 13, "month"), (2026, 0, "month"), (2026, -1, "month"),
    (1969, 5, "year"), (2101, 5, "year"),
])
def test_list_runs_refuses_an_impossible_month(side, year, month, field):
    user = side.user()
    with pytest.raises(ValidationError) as raised:
        side.runs.list_runs(user.id, year, month)
    assert raised.value.field == field


def test_list_runs_of_a_missing_user_is_not_found(side):
    user = side.user()
    side.accounts.delete_user(user.id)
    with pytest.raises(NotFound):
        side.runs.list_runs(user.id, 2026, 5)


def test_update_run(side):
    user = side.user()
    record = side.runs.add_run(user.id, run_input(4, strava_id=77))
    change = run_input(start_date=dt.datetime(2026, 6, 2, 18), name="Evening intervals",
                       distance=8000.0, elapsed_time=2000, average_heartrate=165.0,
                       total_elevation_gain=12.5, strava_id=78)
    updated = side.runs.update_run(user.id, record.id, change)
    assert type(updated) is RunRecord
    # An edit never changes where the run came from: the Strava id stays.
    assert updated == expected_record(record, change, user_id=user.id, strava_id=77)
    assert side.runs.get_run(user.id, record.id) == updated
    assert side.runs.list_runs(user.id, 2026, 5) == []
    assert side.runs.list_runs(user.id, 2026, 6) == [updated]


def test_update_run_can_clear_optional_fields(side):
    user = side.user()
    record = side.runs.add_run(user.id, run_input(average_heartrate=150.0,
                                                  total_elevation_gain=30.0))
    updated = side.runs.update_run(user.id, record.id, run_input())
    assert (updated.average_heartrate, updated.total_elevation_gain) == (None, None)
    assert updated.strava_id is None


def test_update_another_runners_run_is_not_found(side):
    owner, other = side.user(), side.user()
    record = side.runs.add_run(owner.id, run_input())
    with pytest.raises(NotFound):
        side.runs.update_run(other.id, record.id, run_input(name="Hijacked"))
    with pytest.raises(NotFound):
        side.runs.update_run(owner.id, missing_run_id(side, owner.id), run_input())
    assert side.runs.get_run(owner.id, record.id) == record


def test_delete_run(side):
    user = side.user()
    gone = side.runs.add_run(user.id, run_input(5))
    kept = side.runs.add_run(user.id, run_input(6))
    assert side.runs.delete_run(user.id, gone.id) is None
    with pytest.raises(NotFound):
        side.runs.get_run(user.id, gone.id)
    assert side.runs.list_runs(user.id, 2026, 5) == [kept]
    with pytest.raises(NotFound):
        side.runs.delete_run(user.id, gone.id)  # a second time: gone already


def test_delete_another_runners_run_is_not_found(side):
    owner, other = side.user(), side.user()
    record = side.runs.add_run(owner.id, run_input())
    with pytest.raises(NotFound):
        side.runs.delete_run(other.id, record.id)
    assert side.runs.get_run(owner.id, record.id) == record


def test_deleting_a_user_deletes_their_runs(side):
    user = side.user()
    record = side.runs.add_run(user.id, run_input())
    side.accounts.delete_user(user.id)
    with pytest.raises(NotFound):
        side.runs.get_run(user.id, record.id)


def test_import_runs_skips_strava_ids_already_imported(side):
    user = side.user()
    batch = [run_input(1, strava_id=1001), run_input(2, strava_id=1002),
             run_input(3, strava_id=1001, name="Same activity again"),  # duplicate in batch
             run_input(4), run_input(4)]  # no Strava id: never de-duplicated
    count = side.runs.import_runs(user.id, batch)
    assert type(count) is ImportCount
    assert count == ImportCount(created=4, skipped=1)
    listed = side.runs.list_runs(user.id, 2026, 5)
    assert [(run.start_date.day, run.strava_id, run.name) for run in listed] == [
        (1, 1001, "Morning run"), (2, 1002, "Morning run"), (4, None, "Morning run"),
        (4, None, "Morning run")]
    for run, given in zip(listed, [batch[0], batch[1], batch[3], batch[4]], strict=True):
        assert run == expected_record(run, given, user_id=user.id, strava_id=given.strava_id)

    again = side.runs.import_runs(user.id, [run_input(1, strava_id=1001, name="Renamed"),
                                            run_input(2, strava_id=1002),
                                            run_input(7, strava_id=1003),
                                            run_input(8)])
    assert again == ImportCount(created=2, skipped=2)
    after = side.runs.list_runs(user.id, 2026, 5)
    assert len(after) == 6
    assert after[0] == listed[0]  # an import never overwrites a run it already has
    assert sorted(run.strava_id or 0 for run in after) == [0, 0, 0, 1001, 1002, 1003]


def test_import_runs_de_duplicates_per_runner(side):
    user, other = side.user(), side.user()
    side.runs.add_run(other.id, run_input(strava_id=2001))
    assert side.runs.import_runs(user.id, [run_input(strava_id=2001)]) == \
        ImportCount(created=1, skipped=0)
    # A run added by hand with a Strava id counts as imported already.
    assert side.runs.import_runs(other.id, [run_input(strava_id=2001)]) == \
        ImportCount(created=0, skipped=1)


def test_import_no_runs(side):
    user = side.user()
    assert side.runs.import_runs(user.id, []) == ImportCount(created=0, skipped=0)


def test_import_runs_for_a_missing_user_is_not_found(side):
    user = side.user()
    side.accounts.delete_user(user.id)
    with pytest.raises(NotFound):
        side.runs.import_runs(user.id, [run_input(strava_id=1)])


def test_run_records_are_frozen(side):
    user = side.user()
    record = side.runs.add_run(user.id, run_input())
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "changed"  # type: ignore[misc]


def test_a_run_built_in_code_is_normalised_alike(side):
    """Not only `parse` output: a RunInput built by hand is taken as the wire takes it."""
    user = side.user()
    two_hours_east = dt.timezone(dt.timedelta(hours=2))
    record = side.runs.add_run(user.id, run_input(
        name="  Sunrise  ", start_date=dt.datetime(2026, 5, 1, 1, 30, tzinfo=two_hours_east)))
    assert record.name == "Sunrise"
    assert record.start_date == dt.datetime(2026, 4, 30, 23, 30)  # UTC, naive
    assert side.runs.list_runs(user.id, 2026, 4) == [record]


@pytest.mark.parametrize(("changes", "field"), [
    ({"distance": -1.0}, "distance"),
    ({"elapsed_time": 0}, "elapsed_time"),
    ({"name": "   "}, "name"),
    ({"average_heartrate": 999.0}, "average_heartrate"),
    ({"start_date": dt.datetime(1900, 1, 1)}, "start_date"),
    ({"strava_id": 0}, "strava_id"),
])
def test_a_bad_run_built_in_code_is_refused_alike(side, changes, field):
    user = side.user()
    record = side.runs.add_run(user.id, run_input(9))
    with pytest.raises(ValidationError) as added:
        side.runs.add_run(user.id, run_input(**changes))
    assert added.value.field == f"run.{field}"
    with pytest.raises(ValidationError) as updated:
        side.runs.update_run(user.id, record.id, run_input(**changes))
    assert updated.value.field == f"run.{field}"
    with pytest.raises(ValidationError) as imported:
        side.runs.import_runs(user.id, [run_input(2, strava_id=1), run_input(**changes)])
    assert imported.value.field == f"runs[1].{field}"
    assert side.runs.list_runs(user.id, 2026, 5) == [record]  # nothing changed or imported
