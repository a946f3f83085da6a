"""The contracts' parse() validators and the wire format."""

import datetime as dt

import pytest

from contracts import MAX_ID, possible_id
from contracts.accounts import Profile, SignUp
from contracts.races import PlannedRunInput, RaceInput
from contracts.runs import RunInput
from shims.errors import ValidationError
from shims.wire import to_wire

RUN = {"name": "Tempo", "distance": "10000", "start_date": "2026-05-17T09:30:00+02:00",
       "elapsed_time": 2500, "average_heartrate": 150, "total_elevation_gain": 0}


def field_of(parse, data, **kwargs):
    with pytest.raises(ValidationError) as caught:
        parse(data, **kwargs)
    return caught.value.field


def test_run_input_parse():
    run = RunInput.parse(RUN)
    assert run == RunInput(name="Tempo", distance=10000.0,
                           start_date=dt.datetime(2026, 5, 17, 7, 30), elapsed_time=2500,
                           average_heartrate=150.0, total_elevation_gain=0.0)
    assert run.average_speed == 4.0


def test_run_input_strava_id_only_when_allowed():
    assert field_of(RunInput.parse, {**RUN, "strava_id": 5}) == "strava_id"
    assert RunInput.parse({**RUN, "strava_id": "5"}, allow_strava_id=True).strava_id == 5
    assert RunInput.parse(RUN, allow_strava_id=True).strava_id is None
    for bad in (0, True, 2**63, "x"):
        assert field_of(RunInput.parse, {**RUN, "strava_id": bad},
                        allow_strava_id=True) == "strava_id"
    assert RunInput.parse({**RUN, "strava_id": MAX_ID}, allow_strava_id=True).strava_id == MAX_ID


@pytest.mark.parametrize("changes, field", [
    ({"name": None}, "name"), ({"distance": 0.5}, "distance"),
    ({"start_date": "2026-13-01"}, "start_date"), ({"elapsed_time": 0}, "elapsed_time"),
    ({"average_heartrate": 251}, "average_heartrate"),
    ({"total_elevation_gain": 20001}, "total_elevation_gain"), ({"notes": "x"}, "notes"),
])
def test_run_input_refusals_name_the_field(changes, field):
    assert field_of(RunInput.parse, {**RUN, **changes}) == field


@pytest.mark.parametrize("parse, data", [
    (RunInput.parse, RUN), (RunInput.from_wire, RUN),
    (RaceInput.from_wire, {"name": "10k", "date": "2027-04-04", "distance": 10000}),
    (PlannedRunInput.from_wire, {"date": "2027-04-01", "distance": 8000}),
])
def test_a_form_csrf_token_is_no_field_of_any_contract_input(parse, data):
    """The HTML handlers drop Flask-WTF's token (monolith/web.form_data); the wire refuses it."""
    with pytest.raises(ValidationError) as refused:
        parse({**data, "csrf_token": "abc"})
    assert refused.value.field == "csrf_token"


def test_profile_partial_update_keeps_the_base():
    base = Profile(first_name="Ada", age=36, max_hr=190, rest_hr=50)
    assert Profile.parse({"age": "37"}, base=base) == Profile(first_name="Ada", age=37,
                                                              max_hr=190, rest_hr=50)
    assert Profile.parse({"first_name": None, "age": ""}, base=base) == \
        Profile(first_name="", age=None, max_hr=190, rest_hr=50)
    assert Profile.parse({}) == Profile()


def test_profile_rest_hr_must_stay_below_max_hr_including_the_base():
    base = Profile(max_hr=150, rest_hr=60)
    assert field_of(Profile.parse, {"rest_hr": 90, "max_hr": 90}) == "rest_hr"
    assert field_of(Profile.parse, {"max_hr": 80}, base=Profile(rest_hr=80)) == "rest_hr"
    assert Profile.parse({"max_hr": 120}, base=base).max_hr == 120


@pytest.mark.parametrize("name, bad", [
    ("age", 4), ("age", 121), ("weight", 19.9), ("max_hr", 79), ("rest_hr", 24),
    ("vo2max", 101), ("first_name", "x" * 101), ("last_name", 3),
])
def test_profile_bounds(name, bad):
    assert field_of(Profile.parse, {name: bad}) == name


def test_sign_up_parse():
    sign_up = SignUp.parse({"email": "A@B.co", "password": "long enough", "age": 40})
    assert (sign_up.email, sign_up.password, sign_up.profile.age) == ("a@b.co", "long enough",
                                                                     40)
    assert field_of(SignUp.parse, {"email": "a@b.co", "password": "long enough",
                                   "is_admin": True}) == "is_admin"
    assert field_of(SignUp.parse, {"email": "a@b.co", "password": "short"}) == "password"


def test_race_input_parse():
    race = RaceInput.parse({"name": " 10k ", "date": "2027-01-01", "distance": "10000"})
    assert race == RaceInput(name="10k", date=dt.date(2027, 1, 1), distance=10000.0,
                             location="")
    for changes, field in [({"distance": 99}, "distance"), ({"date": "soon"}, "date"),
                           ({"name": ""}, "name"), ({"elevation": 1}, "elevation")]:
        data = {"name": "10k", "date": "2027-01-01", "distance": 10000, **changes}
        assert field_of(RaceInput.parse, data) == field


def test_planned_run_input_parse():
    planned = PlannedRunInput.parse({"date": "2027-01-01", "distance": 5000})
    assert planned == PlannedRunInput(date=dt.date(2027, 1, 1), distance=5000.0, description="")
    assert field_of(PlannedRunInput.parse, {"date": "2027-01-01", "distance": 1e7}) == "distance"
    assert field_of(PlannedRunInput.parse, {"distance": 5000}) == "date"


def test_possible_id():
    assert possible_id(1) and possible_id(MAX_ID)
    assert not possible_id(0) and not possible_id(-1) and not possible_id(MAX_ID + 1)


def test_to_wire_turns_dataclasses_and_dates_into_json_values():
    race = RaceInput(name="10k", date=dt.date(2027, 1, 1), distance=10000.0)
    assert to_wire({"races": (race,), "at": dt.datetime(2027, 1, 1, 7, 30)}) == {
        "races": [{"name": "10k", "date": "2027-01-01", "distance": 10000.0, "location": ""}],
        "at": "2027-01-01T07:30:00+00:00"}
