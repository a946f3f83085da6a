"""The one JSON body loader: depth, text and size rules, each naming where it broke."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import pytest
from flask import Flask

from shims import json_input
from shims.errors import ValidationError
from shims.ids import ids_as_strings
from shims.limits import Limits
from shims.openapi import schema_for
from shims.wire import from_wire, to_wire


def refused(raw, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        json_input.loads(raw, **kwargs)
    return raised.value


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_is_taken_and_one_more_level_is_not():
    assert json_input.loads(nested(json_input.MAX_DEPTH)) is not None
    error = refused(nested(json_input.MAX_DEPTH + 1))
    assert f"deeper than {json_input.MAX_DEPTH}" in error.message


def test_nesting_past_the_parsers_recursion_is_the_same_400_not_a_recursion_error():
    assert "deeper than" in refused(nested(200_000)).message


def test_a_lone_surrogate_is_named_by_its_path():
    raw = json.dumps({"args": {"runs": [{"name": "ok"}, {"name": "bad\ud800"}]}})
    error = refused(raw)
    assert error.field == "args.runs[1].name" and "not valid Unicode" in error.message


def test_a_surrogate_pair_is_one_real_character_and_is_taken():
    assert json_input.loads('{"name": "\\ud83c\\udfc3"}') == {"name": "\U0001F3C3"}


def test_a_key_with_a_lone_surrogate_is_named_escaped():
    assert refused(json.dumps({"a": {"k\ud800": 1}})).field == "a.k\\ud800"


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b'{"a": ', b"NaN-ish"])
def test_what_is_not_json_says_what_to_send(raw):
    assert "send a JSON object" in refused(raw).message


def test_every_app_gets_a_body_limit_but_keeps_its_own():
    plain, own = Flask("plain"), Flask("own")
    own.config["MAX_CONTENT_LENGTH"] = 10
    json_input.ensure_body_limit(plain)
    json_input.ensure_body_limit(own)
    assert plain.config["MAX_CONTENT_LENGTH"] == json_input.DEFAULT_MAX_BYTES
    assert own.config["MAX_CONTENT_LENGTH"] == 10


# --- limits on types: enforced and documented from one object -----------------------------

NAME = Annotated[str, Limits(min_length=2, max_length=5, pattern="^[a-z]+$")]
SCORE = Annotated[float, Limits(minimum=1, maximum=10)]


@pytest.mark.parametrize(("annotation", "value", "words"), [
    (NAME, "a", "at least 2"), (NAME, "abcdef", "at most 5"), (NAME, "ABC", "must match"),
    (SCORE, 0.5, "at least 1"), (SCORE, 11, "at most 10"),
])
def test_limits_are_enforced_by_from_wire(annotation, value, words):
    with pytest.raises(ValidationError) as raised:
        from_wire(annotation, value, "x")
    assert raised.value.field == "x" and words in raised.value.message


def test_the_same_limits_are_in_the_schema():
    assert schema_for(NAME, {}) == {"type": "string", "minLength": 2, "maxLength": 5,
                                    "pattern": "^[a-z]+$"}
    assert schema_for(SCORE | None, {}) == {"anyOf": [
        {"type": "number", "minimum": 1, "maximum": 10}, {"type": "null"}]}
    assert from_wire(NAME, "abc") == "abc" and from_wire(SCORE, 10) == 10.0


def test_date_times_go_out_as_rfc_3339_in_utc_and_naive_ones_come_back():
    naive = dt.datetime(2026, 5, 17, 7, 30)
    assert to_wire(naive) == "2026-05-17T07:30:00+00:00"
    paris = dt.datetime(2026, 5, 17, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert to_wire(paris) == "2026-05-17T07:30:00+00:00"
    assert from_wire(dt.datetime, "2026-05-17T07:30:00") == naive  # still taken, as UTC


def test_ids_as_strings_touches_ids_only():
    wire = {"id": 2**62 + 1, "user_id": 7, "strava_id": None, "count": 3, "is_id": True,
            "runs": [{"id": 5, "distance": 1.5}]}
    assert ids_as_strings(wire) == {"id": str(2**62 + 1), "user_id": "7", "strava_id": None,
                                    "count": 3, "is_id": True,
                                    "runs": [{"id": "5", "distance": 1.5}]}
