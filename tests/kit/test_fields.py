"""shims.fields: every parser, every branch."""

import datetime as dt
import math

import pytest

from shims import fields
from shims.errors import ValidationError


def refused(parse, data, name, *args, mentions="", **kwargs):
    with pytest.raises(ValidationError) as caught:
        parse(data, name, *args, **kwargs)
    assert caught.value.field == name
    assert mentions in caught.value.message
    return caught.value


def test_require_mapping():
    assert fields.require_mapping({"a": 1}) == {"a": 1}
    for value in ([], "x", 1, None):
        with pytest.raises(ValidationError, match="body must be a JSON object"):
            fields.require_mapping(value)


def test_text():
    assert fields.text({"n": "  Ada  "}, "n") == "Ada"
    assert fields.text({}, "n", required=False, default="d") == "d"
    assert fields.text({"n": "   "}, "n", required=False) is None
    assert fields.text({"n": None}, "n", required=False, default="") == ""
    refused(fields.text, {}, "n", mentions="n is required")
    refused(fields.text, {"n": " "}, "n", mentions="required")
    refused(fields.text, {"n": 5}, "n", mentions="must be a string")
    refused(fields.text, {"n": "abcd"}, "n", max_length=3, mentions="at most 3 characters")
    assert fields.text({"n": " abc "}, "n", max_length=3) == "abc"  # measured after stripping


def test_email():
    assert fields.email({"email": " Ada@Example.COM "}) == "ada@example.com"
    assert fields.email({}, required=False) is None
    refused(fields.email, {"email": "ada@example"}, "email", mentions="email address")
    refused(fields.email, {"email": "a b@example.com"}, "email", mentions="email address")
    refused(fields.email, {"email": "x" * 250 + "@e.com"}, "email", mentions="at most 254")


def test_password_is_taken_exactly_as_typed():
    assert fields.password({"password": "  spaced  "}) == "  spaced  "
    refused(fields.password, {}, "password", mentions="required")
    refused(fields.password, {"password": ""}, "password", mentions="required")
    refused(fields.password, {"password": 12345678}, "password", mentions="must be a string")
    refused(fields.password, {"password": "short"}, "password", mentions="at least 8")
    refused(fields.password, {"password": "p" * 201}, "password", mentions="at most 200")
    assert fields.password({"password": "x"}, min_length=1) == "x"


@pytest.mark.parametrize("value, expected", [
    (42, 42.0), (4.5, 4.5), ("4.5", 4.5), (" 7 ", 7.0), ("1e3", 1000.0),
])
def test_number_accepts_numbers_and_their_spelling(value, expected):
    result = fields.number({"x": value}, "x")
    assert result == expected and isinstance(result, float)


@pytest.mark.parametrize("value, mentions", [
    (True, "a number"), (False, "a number"), ("abc", "got 'abc'"), ([1], "a number"),
    ({"v": 1}, "a number"), (math.nan, "finite"), (math.inf, "finite"), (-math.inf, "finite"),
    ("nan", "finite"), ("Infinity", "finite"),
])
def test_number_refuses_what_is_not_a_finite_number(value, mentions):
    refused(fields.number, {"x": value}, "x", mentions=mentions)


def test_number_bounds_and_absence():
    assert fields.number({"x": 5}, "x", minimum=5, maximum=5) == 5.0
    refused(fields.number, {"x": 4.9}, "x", minimum=5, mentions="at least 5")
    refused(fields.number, {"x": 10.5}, "x", maximum=10, mentions="at most 10")
    assert fields.number({}, "x", required=False, default=3) == 3
    assert fields.number({"x": ""}, "x", required=False) is None
    refused(fields.number, {"x": None}, "x", mentions="required")


def test_integer():
    assert fields.integer({"x": 7}, "x") == 7
    assert fields.integer({"x": "7"}, "x") == 7
    assert fields.integer({"x": 7.0}, "x") == 7 and isinstance(fields.integer({"x": 7.0}, "x"),
                                                             int)
    refused(fields.integer, {"x": 7.5}, "x", mentions="an integer")
    refused(fields.integer, {"x": "7.0"}, "x", mentions="an integer")
    refused(fields.integer, {"x": True}, "x", mentions="an integer")
    refused(fields.integer, {"x": math.inf}, "x", mentions="an integer")
    refused(fields.integer, {"x": "9" * 5000}, "x", mentions="an integer")
    refused(fields.integer, {"x": 2**70}, "x", maximum=2**63, mentions="at most")


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("ON", True), ("yes", True), ("1", True),
    ("false", False), ("off", False), ("No", False), ("0", False), (None, False), ("", False),
])
def test_boolean(value, expected):
    assert fields.boolean({"b": value}, "b") is expected


def test_boolean_default_and_refusals():
    assert fields.boolean({}, "b", default=True) is True
    for value in (1, 0, "maybe", [], 2.0):
        refused(fields.boolean, {"b": value}, "b", mentions="true or false")


def test_date():
    assert fields.date({"d": " 2026-05-17 "}, "d") == dt.date(2026, 5, 17)
    assert fields.date({}, "d", required=False) is None
    refused(fields.date, {}, "d", mentions="required")
    for value in ("17/05/2026", "2026-02-30", 20260517, "2026-05-17T07:00"):
        refused(fields.date, {"d": value}, "d", mentions="date like 2026-05-17")


@pytest.mark.parametrize("value, expected", [
    ("2026-05-17T07:30:00", dt.datetime(2026, 5, 17, 7, 30)),
    ("2026-05-17T07:30:00Z", dt.datetime(2026, 5, 17, 7, 30)),
    ("2026-05-17T09:30:00+02:00", dt.datetime(2026, 5, 17, 7, 30)),
    ("2026-05-17T00:30:00-01:00", dt.datetime(2026, 5, 17, 1, 30)),
    ("2026-05-17", dt.datetime(2026, 5, 17)),
])
def test_timestamp_is_naive_utc(value, expected):
    parsed = fields.timestamp({"t": value}, "t")
    assert parsed == expected and parsed.tzinfo is None


@pytest.mark.parametrize("value", ["tomorrow", 1747467000, "2026-05-17T25:00:00",
                                   "9999-12-31T23:30:00-05:00", "0001-01-01T00:30:00+01:00"])
def test_timestamp_refusals(value):
    refused(fields.timestamp, {"t": value}, "t", mentions="date-time")


def test_timestamp_absent():
    assert fields.timestamp({}, "t", required=False) is None
    refused(fields.timestamp, {}, "t", mentions="required")


def test_month():
    assert fields.month("2026", "12") == (2026, 12)
    assert fields.month(2026, 1) == (2026, 1)
    with pytest.raises(ValidationError) as caught:
        fields.month(2026, 13)
    assert caught.value.field == "month"
    with pytest.raises(ValidationError) as caught:
        fields.month("1969", 5)
    assert caught.value.field == "year"


def test_only_known():
    fields.only_known({"a": 1}, {"a", "b"})
    with pytest.raises(ValidationError) as caught:
        fields.only_known({"a": 1, "zz": 2, "c": 3}, {"a"}, what="run")
    assert caught.value.field == "c"
    assert caught.value.message == "unknown field(s) in run: c, zz"


def test_problems_keeps_every_refusal_and_raises_them_together():
    problems = fields.Problems()
    data = {"age": "old", "weight": "70"}
    assert problems.parse(fields.text, data, "name") is None
    assert problems.parse(fields.number, data, "weight") == 70.0
    assert problems.parse(fields.integer, data, "age") is None
    with pytest.raises(ValidationError) as caught:
        problems.raise_any()
    assert (caught.value.field, caught.value.message) == ("name", "name is required")
    assert [problem.field for problem in caught.value.problems] == ["name", "age"]


def test_problems_flattens_an_error_that_already_holds_several():
    inner = fields.Problems()
    inner.parse(fields.text, {}, "a")
    inner.parse(fields.text, {}, "b")
    outer = fields.Problems()
    outer.parse(inner.raise_any)
    outer.parse(fields.text, {}, "c")
    with pytest.raises(ValidationError) as caught:
        outer.raise_any()
    assert [problem.field for problem in caught.value.problems] == ["a", "b", "c"]


def test_problems_without_a_refusal_raises_nothing():
    problems = fields.Problems()
    assert problems.parse(fields.text, {"n": "x"}, "n") == "x"
    problems.raise_any()
