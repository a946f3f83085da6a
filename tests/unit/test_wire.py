"""shims.wire: every shape from_wire decodes, every refusal naming its path, and a
to_wire/from_wire round trip of every dataclass any contract carries."""

import dataclasses
import datetime as dt
import json
import typing
from typing import Any

import pytest

from contract_types import contract_dataclasses
from contracts.accounts import ACCOUNTS, Profile, SignUp, StravaLink, UserRecord
from contracts.races import (
    RACES,
    PlannedRunInput,
    PlannedRunRecord,
    RaceInput,
    RaceRecord,
)
from contracts.reports import REPORTS, DayDistance, MonthlyReport
from contracts.runs import RUNS, ImportCount, RunInput, RunRecord
from contracts.strava import STRAVA, ImportResult
from shims.errors import ValidationError
from shims.sync import (SYNC, Applied, Backlog, PendingChange, RowChange, RowKey,
                         TableDigest)
from shims.wire import from_wire, to_wire

SPECS = (ACCOUNTS, RUNS, RACES, REPORTS, STRAVA, SYNC)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: str = ""


@dataclasses.dataclass(frozen=True)
class Track:
    name: str
    points: list[Point]
    start: Point | None = None
    tags: tuple[str, ...] = ()
    extra: dict[str, float] = dataclasses.field(default_factory=dict)


def refused(annotation, value, path="value"):
    """The ValidationError from_wire raises; its field is the path to the culprit."""
    with pytest.raises(ValidationError) as caught:
        from_wire(annotation, value, path)
    assert caught.value.status == 400 and caught.value.code == "invalid"
    return caught.value


# --- scalars -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 1, -5, 2**63 - 1, 2**70])
def test_int(value):
    assert from_wire(int, value) == value
    assert type(from_wire(int, value)) is int


def test_int_takes_an_integral_float_as_json_schema_does():
    assert from_wire(int, 2.0) == 2 and type(from_wire(int, 2.0)) is int


@pytest.mark.parametrize("value", [True, False, 1.5, float("inf"), "1", None, [1], {"a": 1}])
def test_int_refuses_everything_else(value):
    error = refused(int, value, "run_id")
    assert error.field == "run_id"
    assert error.message == "run_id must be an integer"


@pytest.mark.parametrize("value, expected", [(1, 1.0), (2.5, 2.5), (-0.0, 0.0), (0, 0.0)])
def test_float_accepts_ints_and_floats(value, expected):
    decoded = from_wire(float, value)
    assert decoded == expected and type(decoded) is float


@pytest.mark.parametrize("value", [True, False, "1.5", None, [1.0]])
def test_float_refuses_non_numbers(value):
    assert refused(float, value, "distance").message == "distance must be a number"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 10**400,
                                   -(10**400)])
def test_float_must_be_finite(value):
    error = refused(float, value, "distance")
    assert error.message == "distance must be a finite number"
    assert error.field == "distance"


def test_float_from_real_json_specials():
    """Python's json module reads NaN and Infinity; the wire must not let them through."""
    for text in ("NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400):
        refused(float, json.loads(text))


@pytest.mark.parametrize("value", ["", "Tempo", "ünïcode ✓", " spaced "])
def test_str(value):
    assert from_wire(str, value) == value  # taken verbatim: no stripping on the wire


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"a": "b"}])
def test_str_refuses_non_strings(value):
    assert refused(str, value, "name").message == "name must be a string"


def test_bool():
    assert from_wire(bool, True) is True
    assert from_wire(bool, False) is False
    for value in (0, 1, "true", "false", None, 1.0):
        assert refused(bool, value, "is_admin").message == "is_admin must be true or false"


@pytest.mark.parametrize("value, expected", [
    ("2026-05-17T07:30:00", dt.datetime(2026, 5, 17, 7, 30)),
    ("2026-05-17T07:30:00.250000", dt.datetime(2026, 5, 17, 7, 30, 0, 250000)),
    ("2026-05-17T07:30:00Z", dt.datetime(2026, 5, 17, 7, 30)),
    ("2026-05-17T09:30:00+02:00", dt.datetime(2026, 5, 17, 7, 30)),
    ("2026-05-17T01:00:00-07:00", dt.datetime(2026, 5, 17, 8, 0)),
    ("2026-05-17T00:30:00+01:00", dt.datetime(2026, 5, 16, 23, 30)),  # crosses midnight
    ("2026-05-17T07:30:00+00:00", dt.datetime(2026, 5, 17, 7, 30)),
])
def test_datetime_becomes_naive_utc(value, expected):
    decoded = from_wire(dt.datetime, value)
    assert decoded == expected
    assert decoded.tzinfo is None


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01T00:00:00", "2026-05-17T25:00",
                                   "17/05/2026", 1_747_000_000, None, True])
def test_datetime_refuses_non_iso(value):
    assert refused(dt.datetime, value, "start_date").field == "start_date"


def test_datetime_out_of_range_after_conversion_to_utc():
    error = refused(dt.datetime, "9999-12-31T23:30:00-05:00", "start_date")
    assert error.field == "start_date"


def test_date():
    assert from_wire(dt.date, "2026-05-17") == dt.date(2026, 5, 17)
    assert type(from_wire(dt.date, "2026-05-17")) is dt.date
    for value in ("", "2026-02-30", "May 17", "2026-05-17T07:30:00", 20260517, None):
        assert refused(dt.date, value, "date").field == "date"


def test_any_and_none():
    marker = {"anything": [1, "two"]}
    assert from_wire(Any, marker) is marker
    assert from_wire(type(None), None) is None
    assert from_wire(None, None) is None
    assert refused(type(None), 0, "result").message == "result must be null"


def test_an_annotation_without_a_wire_format_is_a_programming_error():
    with pytest.raises(TypeError, match="no wire format"):
        from_wire(bytes, "abc")
    with pytest.raises(TypeError, match="Optional"):
        from_wire(int | str, 1)


# --- containers ----------------------------------------------------------------------------

def test_optional():
    for annotation in (int | None, typing.Optional[int]):  # noqa: UP045 - both spellings
        assert from_wire(annotation, None) is None
        assert from_wire(annotation, 3) == 3
        assert refused(annotation, "3", "age").message == "age must be an integer"
    assert from_wire(dt.datetime | None, "2026-05-17T07:30:00Z") == dt.datetime(2026, 5, 17, 7, 30)


def test_list():
    assert from_wire(list[int], []) == []
    assert from_wire(list[int], [1, 2, 3]) == [1, 2, 3]
    assert type(from_wire(list[int], [1])) is list
    assert refused(list[int], (1, 2), "ids").message == "ids must be a list"
    assert refused(list[int], {"0": 1}, "ids").field == "ids"
    assert refused(list[int], "12", "ids").field == "ids"
    assert refused(list[int], [1, 2, "3"], "ids").field == "ids[2]"


def test_homogeneous_tuple():
    decoded = from_wire(tuple[float, ...], [1, 2.5])
    assert decoded == (1.0, 2.5) and type(decoded) is tuple
    assert from_wire(tuple[str, ...], []) == ()
    assert refused(tuple[float, ...], [1, "x"], "per_day").field == "per_day[1]"
    assert refused(tuple[float, ...], None, "per_day").field == "per_day"


def test_dict():
    assert from_wire(dict[str, int], {"a": 1, "b": 2}) == {"a": 1, "b": 2}
    assert from_wire(dict[str, Any], {"a": [1], "b": None}) == {"a": [1], "b": None}
    assert refused(dict[str, int], {"a": 1, "b": "2"}, "checksums").field == "checksums.b"
    assert refused(dict[str, int], [["a", 1]], "checksums").message == \
        "checksums must be an object"


def test_nested_dataclass():
    wire = {"name": "loop", "points": [{"x": 1, "label": "a"}, {"x": 2}],
            "start": {"x": 0}, "tags": ["hilly", "wet"], "extra": {"ascent": 12}}
    assert from_wire(Track, wire) == Track(
        name="loop", points=[Point(1, "a"), Point(2)], start=Point(0), tags=("hilly", "wet"),
        extra={"ascent": 12.0})
    assert from_wire(Track, {"name": "bare", "points": []}) == Track("bare", [])


@pytest.mark.parametrize("wire, field", [
    ({"name": "t", "points": [{"x": 1}, {"x": "2"}]}, "track.points[1].x"),
    ({"name": "t", "points": [{"x": 1}, {}]}, "track.points[1].x"),
    ({"name": "t", "points": [{"x": 1, "y": 2}]}, "track.points[0].y"),
    ({"name": "t", "points": [], "start": {"x": 1.5}}, "track.start.x"),
    ({"name": "t", "points": [], "start": []}, "track.start"),
    ({"name": "t", "points": [], "tags": ["a", 1]}, "track.tags[1]"),
    ({"name": "t", "points": [], "extra": {"ascent": "high"}}, "track.extra.ascent"),
    ({"name": None, "points": []}, "track.name"),
    ({"points": []}, "track.name"),
    ({"name": "t"}, "track.points"),
    ({"name": "t", "points": [], "colour": "red"}, "track.colour"),
    (["t", []], "track"),
    (None, "track"),
])
def test_nested_refusals_name_the_path(wire, field):
    assert refused(Track, wire, "track").field == field


def test_unknown_fields_are_listed_and_the_first_is_the_field():
    error = refused(Point, {"x": 1, "zeta": 1, "alpha": 2}, "point")
    assert error.field == "point.alpha"
    assert "alpha, zeta" in error.message


def test_missing_required_field():
    error = refused(Point, {"label": "a"}, "point")
    assert (error.field, error.message) == ("point.x", "point.x is required")


def test_null_for_a_required_non_optional_field():
    assert refused(RunRecord, {**to_wire(RUN_RECORD), "name": None}, "result").field == \
        "result.name"


# --- dataclasses with their own from_wire rules --------------------------------------------

RUN_WIRE = {"name": "Tempo", "distance": 10000, "start_date": "2026-05-17T09:30:00+02:00",
            "elapsed_time": 2500}


def test_a_dataclass_with_from_wire_validates_by_its_own_rules():
    run = from_wire(RunInput, {**RUN_WIRE, "strava_id": 99}, "run")
    assert run == RunInput(name="Tempo", distance=10000.0,
                           start_date=dt.datetime(2026, 5, 17, 7, 30), elapsed_time=2500,
                           strava_id=99)
    # RunInput.parse is lenient about spelling, as forms are; the wire is not: it takes what
    # its OpenAPI document says (a number), so the document and the server agree.
    assert refused(RunInput, {**RUN_WIRE, "distance": "10000"}, "run").field == "run.distance"


@pytest.mark.parametrize("change, field", [
    ({"distance": 0}, "run.distance"),
    ({"distance": "far"}, "run.distance"),
    ({"distance": float("nan")}, "run.distance"),
    ({"elapsed_time": True}, "run.elapsed_time"),
    ({"start_date": "soon"}, "run.start_date"),
    ({"name": ""}, "run.name"),
    ({"average_heartrate": 400}, "run.average_heartrate"),
    ({"strava_id": 0}, "run.strava_id"),
    ({"colour": "red"}, "run.colour"),
])
def test_a_custom_refusal_is_placed_at_its_path(change, field):
    assert refused(RunInput, {**RUN_WIRE, **change}, "run").field == field


def test_every_problem_of_a_custom_refusal_is_placed_at_its_path():
    error = refused(RunInput, {**RUN_WIRE, "name": "", "distance": 0}, "run")
    assert [problem.field for problem in error.problems] == ["run.name", "run.distance"]


def test_a_custom_refusal_inside_a_list_names_the_item():
    runs = [RUN_WIRE, RUN_WIRE, {**RUN_WIRE, "elapsed_time": -1}]
    assert refused(list[RunInput], runs, "runs").field == "runs[2].elapsed_time"
    missing = [RUN_WIRE, {k: v for k, v in RUN_WIRE.items() if k != "name"}]
    assert refused(list[RunInput], missing, "runs").field == "runs[1].name"


def test_a_custom_dataclass_still_needs_an_object():
    assert refused(RunInput, "Tempo", "run").field == "run"
    assert refused(SignUp, None, "request").field == "request"


def test_signup_validates_its_nested_profile():
    wire = {"email": "Ada@Example.com", "password": "correct-horse-9",
            "profile": {"first_name": "Ada", "age": 34}}
    assert from_wire(SignUp, wire, "request") == SignUp(
        email="ada@example.com", password="correct-horse-9",
        profile=Profile(first_name="Ada", age=34))
    assert refused(SignUp, {**wire, "profile": {"age": 200}}, "request").field.startswith(
        "request.")
    assert refused(SignUp, {**wire, "password": "short"}, "request").field == \
        "request.password"


# --- round trips of every contract's dataclasses -------------------------------------------

WHEN = dt.datetime(2026, 5, 17, 7, 30, 15)
DAY = dt.date(2026, 6, 28)
PROFILE = Profile(first_name="Ada", last_name="Lovelace", age=34, weight=68.5, max_hr=188,
                  rest_hr=52, vo2max=51.0)
RUN_INPUT = RunInput(name="Tempo", distance=10000.0, start_date=WHEN, elapsed_time=2500,
                     average_heartrate=150.0, total_elevation_gain=42.0, strava_id=123456789)
RUN_RECORD = RunRecord(id=2**62, user_id=2**40, name="Tempo", distance=10000.0,
                       start_date=WHEN, elapsed_time=2500, average_speed=4.0,
                       average_heartrate=None, total_elevation_gain=0.0, strava_id=None)

SAMPLES = {
    Profile: [PROFILE, Profile()],
    SignUp: [SignUp(email="ada@example.com", password="correct-horse-9", profile=PROFILE),
             SignUp(email="bob@example.com", password="p" * 200, profile=Profile())],
    UserRecord: [UserRecord(id=5, email="ada@example.com", first_name="Ada", last_name="",
                            age=None, weight=68.5, max_hr=None, rest_hr=None, vo2max=None,
                            is_admin=True, strava_linked=False, created_at=WHEN)],
    StravaLink: [StravaLink(user_id=5, token="tok-ada")],
    RunInput: [RUN_INPUT, RunInput(name="Easy", distance=5000.5, start_date=WHEN,
                                   elapsed_time=1800)],
    RunRecord: [RUN_RECORD],
    ImportCount: [ImportCount(created=3, skipped=0)],
    RaceInput: [RaceInput(name="Runnerly 10K", date=DAY, distance=10000.0, location="Park"),
                RaceInput(name="Half", date=DAY, distance=21097.5)],
    RaceRecord: [RaceRecord(id=1, name="Runnerly 10K", date=DAY, distance=10000.0, location="",
                            created_by=None, runner_count=0, joined=False)],
    PlannedRunInput: [PlannedRunInput(date=DAY, distance=8000.0, description="tempo")],
    PlannedRunRecord: [PlannedRunRecord(id=9, race_id=1, user_id=5, date=DAY, distance=8000.0,
                                        description="")],
    DayDistance: [DayDistance(day=17, distance=10000.0)],
    MonthlyReport: [MonthlyReport(user_id=5, year=2026, month=5, run_count=2,
                                  total_distance=15000.0, longest_distance=10000.0,
                                  total_time=4300, average_pace=286.7, average_heartrate=None,
                                  per_day=(DayDistance(1, 5000.0), DayDistance(17, 10000.0))),
                    MonthlyReport(user_id=5, year=2026, month=6, run_count=0, total_distance=0.0,
                                  longest_distance=0.0, total_time=0, average_pace=None,
                                  average_heartrate=None, per_day=())],
    ImportResult: [ImportResult(user_id=5, fetched=3, created=1, skipped=1, ignored=1),
                   ImportResult(user_id=6, fetched=0, created=0, skipped=0,
                                error="Strava refused the token")],
    RowKey: [RowKey("user_runs", 5)],
    RowChange: [RowChange("run", 7, 1795968852302298, {"id": 7, "name": "Tempo",
                                                       "distance": 1.5, "strava_id": None}),
                RowChange("run", 8, 0, None)],
    PendingChange: [PendingChange("user", 5, 1795968852302298)],
    Applied: [Applied(applied=2, skipped=1)],
    Backlog: [Backlog(entries=3, oldest_seconds=0.25), Backlog(entries=0, oldest_seconds=0.0)],
    TableDigest: [TableDigest(table="runs", count=2, checksums={"7": "ab", "8": "cd"})],
}


def test_every_contract_dataclass_has_a_round_trip_sample():
    assert contract_dataclasses(SPECS) == set(SAMPLES)


@pytest.mark.parametrize("value", [v for values in SAMPLES.values() for v in values],
                         ids=lambda v: type(v).__name__)
def test_round_trip(value):
    wire = to_wire(value)
    again = json.loads(json.dumps(wire, allow_nan=False))  # strictly JSON-ready
    assert again == wire
    decoded = from_wire(type(value), again, "value")
    assert decoded == value
    assert type(decoded) is type(value)
    assert to_wire(decoded) == wire


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_round_trip_through_every_method_signature(spec):
    """Each method's result type and argument types decode what to_wire made of a sample."""
    samples = {cls: values[0] for cls, values in SAMPLES.items()}

    def example(annotation):
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:  # a value within its limits
            base, *limits = typing.get_args(annotation)
            value = example(base)
            low = max((limit.minimum for limit in limits if limit.minimum is not None),
                      default=None)
            return base(low) if low is not None and value < low else value
        if origin in (typing.Union, type(int | None)):
            return example(next(a for a in typing.get_args(annotation) if a is not type(None)))
        if origin in (list, tuple):
            item = example(typing.get_args(annotation)[0])
            return [item, item] if origin is list else (item,)
        if annotation in samples:
            return samples[annotation]
        return {int: 3, str: "x", bool: True, float: 1.5, dt.date: DAY, dt.datetime: WHEN,
                type(None): None}[annotation]

    for method in spec.methods.values():
        for annotation in [method.returns, *(p.annotation for p in method.params)]:
            value = example(annotation)
            assert from_wire(annotation, to_wire(value), method.qualified_name) == value


def test_to_wire_shapes():
    assert to_wire(WHEN) == "2026-05-17T07:30:15+00:00"  # RFC 3339: naive is UTC, said so
    assert to_wire(DAY) == "2026-06-28"
    assert to_wire((1, [DAY], {"k": (WHEN,)})) == [1, ["2026-06-28"],
                                                   {"k": ["2026-05-17T07:30:15+00:00"]}]
    assert to_wire(None) is None and to_wire(True) is True
    assert to_wire(Point(1)) == {"x": 1, "label": ""}
    assert to_wire(Point) is Point  # a class is not a value


def test_to_wire_takes_subclasses_and_empty_dataclasses_as_before():
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    @dataclasses.dataclass(frozen=True)
    class Empty:
        pass

    class Stamp(dt.datetime):
        pass

    assert to_wire([Level.HIGH, Empty(), Empty()]) == [Level.HIGH, {}, {}]
    assert json.dumps(to_wire(Level.HIGH)) == "3"
    assert to_wire(Stamp(2026, 5, 17, 7, 30, 15)) == "2026-05-17T07:30:15+00:00"
    assert to_wire({"p": Point(2, "b")}) == {"p": {"x": 2, "label": "b"}}
