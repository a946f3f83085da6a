"""The /api/ OpenAPI document: every route documented, and each limit the parser's own."""

import datetime as dt
import re
import sys

import pytest

from monolith import api_patterns
from monolith.api_openapi import (PLANNED_RUN, RACE, RUN_FIELDS, RUN_REQUIRED, SIGN_UP,
                                  api_document, operations)
from contracts.accounts import SignUp
from contracts.races import PlannedRunInput, RaceInput
from contracts.runs import RunInput
from shims import fields
from shims.errors import ValidationError

VALID_RUN = {"name": "Tempo", "distance": 8000, "start_date": "2026-11-02T07:00:00",
             "elapsed_time": 2400}
VALID_RACE = {"name": "City 10k", "date": "2026-12-01", "distance": 10000}
VALID_PLANNED = {"date": "2026-11-20", "distance": 5000}
VALID_SIGN_UP = {"email": "ada@example.com", "password": "correct-horse-9"}


def _flask_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def test_every_api_route_is_documented_and_nothing_else(app):
    routes = {(_flask_path(rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == set(operations())


def test_the_document_is_served_without_credentials(web):
    document = web.get("/api/openapi.json").json
    assert document["openapi"] == "3.1.0"
    assert {path for path, _ in operations()} == set(document["paths"])
    assert document["paths"]["/api/users"]["post"]["security"] == []
    assert {"bearerAuth": []} in document["paths"]["/api/runs"]["get"]["security"]


def test_ids_are_documented_as_strings_of_digits(web):
    schemas = web.get("/api/openapi.json").json["components"]["schemas"]
    assert schemas["Id"] == {**schemas["Id"], "type": "string", "pattern": "^[0-9]+$"}
    assert schemas["RunRecord"]["properties"]["id"] == {"$ref": "#/components/schemas/Id"}
    created_by = schemas["RaceRecord"]["properties"]["created_by"]
    assert {"$ref": "#/components/schemas/Id"} in created_by["anyOf"]


def _bounds(properties):
    for name, schema in properties.items():
        schema = schema.get("anyOf", [schema])[0]
        if "minimum" in schema:
            step = 1 if schema["type"] == "integer" else 0.001
            yield name, schema["minimum"], schema["minimum"] - step
            yield name, schema["maximum"], schema["maximum"] + step


CASES = [(RunInput.parse, VALID_RUN, RUN_FIELDS), (RaceInput.parse, VALID_RACE,
                                                   RACE["properties"]),
         (PlannedRunInput.parse, VALID_PLANNED, PLANNED_RUN["properties"]),
         (SignUp.parse, VALID_SIGN_UP, SIGN_UP["properties"])]


@pytest.mark.parametrize("parse,valid,properties", CASES)
def test_numeric_limits_are_the_parsers(parse, valid, properties):
    for name, inside, outside in _bounds(properties):
        parse({**valid, name: inside})
        with pytest.raises(ValidationError) as refused:
            parse({**valid, name: outside})
        assert refused.value.field == name


SPACES = [" ", "\t", "\n", "\x1c", "\x85", "\xa0", "\u2003", "\u3000"]
TEXTS = ["x", " x ", "\x1cx\x1f", "\ufeffx", "a b", "\u3000", *SPACES, "",
         "y" * 100, " " + "y" * 100 + "\n", "y" * 101, "\ufeff" + "y" * 100]


def _text_parses(value, required):
    try:
        fields.text({"f": value}, "f", max_length=100, required=required)
        return True
    except ValidationError:
        return False


@pytest.mark.parametrize("required", [True, False])
@pytest.mark.parametrize("value", TEXTS)
def test_text_pattern_is_the_parsers(value, required):
    pattern = api_patterns.stripped_text(100, required=required)
    assert bool(re.search(pattern, value)) == _text_parses(value, required)


def test_every_space_is_in_the_basic_multilingual_plane():
    astral = [c for c in map(chr, range(api_patterns.BMP, sys.maxunicode + 1)) if c.isspace()]
    assert astral == []


@pytest.mark.parametrize("value", ["a@b.co", "a\x1c@b.co", "a@b\x85.co", "a\ufeff@b.co",
                                   "a@b", "a b@c.de", "0@0.com*"])
def test_email_pattern_is_the_parsers(value):
    try:
        fields.email({"email": value})
        parsed = True
    except ValidationError:
        parsed = False
    assert bool(re.search(api_patterns.email(), value)) == parsed


def test_date_pattern_is_the_parsers():
    pattern = re.compile(api_patterns.date())
    day = dt.date(fields.FIRST_YEAR - 1, 12, 1)
    while day.year <= fields.LAST_YEAR + 1:
        assert bool(pattern.search(day.isoformat())) == \
            (fields.FIRST_YEAR <= day.year <= fields.LAST_YEAR), day
        day += dt.timedelta(days=1)
    for impossible in ("2026-02-29", "2026-04-31", "2026-13-01", "2026-00-10", "2026-1-1"):
        assert not pattern.search(impossible)
    assert pattern.search("2024-02-29") and pattern.search("2000-02-29")
    assert not pattern.search("2100-02-29")


@pytest.mark.parametrize("value", ["2026-11-02T07:30", "2026-11-02T07:30:00",
                                   "2026-11-02T07:30:00.123456Z", "2026-11-02T07:30:00+05:30",
                                   "2026-11-02T23:59:59-23:59"])
def test_timestamps_the_pattern_accepts_are_parsed(value):
    assert re.search(api_patterns.timestamp(), value)
    fields.timestamp({"t": value}, "t")


@pytest.mark.parametrize("value", ["2026-11-02T24:00", "2026-11-02T07:60", "1969-12-31T23:00",
                                   "2026-11-02", "2026-11-02T07:30:00+24:00", "2026-11-02 x"])
def test_timestamps_the_pattern_refuses(value):
    assert not re.search(api_patterns.timestamp(), value)


def test_required_fields_are_the_parsers():
    for name in RUN_REQUIRED:
        with pytest.raises(ValidationError):
            RunInput.parse({k: v for k, v in VALID_RUN.items() if k != name})


def test_the_served_document_is_the_built_one(web):
    """test_schemathesis_api fuzzes api_document() itself; this is what clients fetch."""
    assert web.get("/api/openapi.json").json == api_document()


@pytest.mark.parametrize("max_hr,rest_hr", [(80, 79), (80, 80), (100, 120), (121, 120),
                                            (120, 119), (120, 120), (250, 25), (None, 120)])
def test_rest_hr_below_max_hr_as_the_parser_says(max_hr, rest_hr):
    import jsonschema_rs  # schemathesis's validator: what it checks the document with

    body = {**VALID_SIGN_UP, "max_hr": max_hr, "rest_hr": rest_hr}
    try:
        SignUp.parse(body)
        parsed = True
    except ValidationError:
        parsed = False
    assert jsonschema_rs.validator_for(SIGN_UP).is_valid(body) == parsed
