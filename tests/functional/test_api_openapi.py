"""The /api/ OpenAPI document: every route documented, and each limit the parser's own."""

import re

import pytest

from monolith.api_openapi import PLANNED_RUN, RACE, RUN_FIELDS, RUN_REQUIRED, SIGN_UP, operations
from contracts.accounts import SignUp
from contracts.races import PlannedRunInput, RaceInput
from contracts.runs import RunInput
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


@pytest.mark.parametrize("parse,valid,properties", CASES)
def test_text_patterns_are_the_parsers(parse, valid, properties):
    for name, schema in properties.items():
        schema = schema.get("anyOf", [schema])[0]
        if "pattern" not in schema or name == "email":
            continue
        longest = int(re.search(r"\{0,(\d+)\}", schema["pattern"]).group(1)) + 2
        for value in (" x ", "  " + "y" * longest + "\t", "y" * (longest + 1), "   "):
            accepted = re.search(schema["pattern"], value) is not None
            try:
                parse({**valid, name: value})
                parsed = True
            except ValidationError:
                parsed = False
            assert accepted == parsed, (name, value)


def test_required_fields_are_the_parsers():
    for name in RUN_REQUIRED:
        with pytest.raises(ValidationError):
            RunInput.parse({k: v for k, v in VALID_RUN.items() if k != name})
